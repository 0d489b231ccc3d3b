"""MkDocs hook: the flags page is made from the commands' own argparse parsers, so it cannot drift.

A line ``<!-- flags: mnist-train -->`` (or mnist-evaluate, mnist-predict, mnist-export,
mnist-serve) in a page is replaced by a Markdown table of that command's arguments, read from
``mnist_classifier.cli.<name>.build_parser()``: each argument's flags, its help text as ``--help``
prints it, and its choices. Only the public attributes of argparse's actions are read.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import re

# <!-- flags: mnist-train --> alone on its line.
MARKER = re.compile(r"^[ \t]*<!--\s*flags:\s*mnist-(train|evaluate|predict|export|serve)\s*-->[ \t]*$", re.MULTILINE)


# Under "mkdocs.", so that a warning fails a --strict build.
log = logging.getLogger("mkdocs.hooks.flags")


def on_page_markdown(markdown: str, page, config, files) -> str:
    markdown = MARKER.sub(lambda match: flags_table(match.group(1)), markdown)
    for line in markdown.splitlines():
        if re.match(r"\s*<!--\s*flags:", line):
            log.warning("%s: %r names no command (mnist-train, -evaluate, -predict, -export, -serve)",
                        page.file.src_path, line.strip())
    return markdown


def flags_table(command: str) -> str:
    """The Markdown table of ``mnist-<command>``'s arguments, in the parser's order."""
    parser = importlib.import_module(f"mnist_classifier.cli.{command}").build_parser()
    rows = ["| flag | meaning | choices |", "| --- | --- | --- |"]
    for action in _actions(parser):
        if "-h" in action.option_strings or "--help" in action.option_strings or action.help == argparse.SUPPRESS:
            continue
        rows.append(f"| {_cell(_flags(action))} | {_cell(_help(parser, action))} | {_cell(_choices(action))} |")
    return "\n".join(rows) + "\n"


def _actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The parser's arguments: positionals and options, each once, in the order they were added."""
    # argparse keeps them in ``_actions``; there is no public accessor, but every argument group
    # shares that one list, so reading it is what ``--help`` itself does.
    return list(parser._actions)


def _flags(action: argparse.Action) -> str:
    """``--lr LR``, ``--augment, --no-augment``, ``INPUT ...``: how the argument is written."""
    value = action.metavar or (action.dest.upper() if action.option_strings else action.dest)
    if isinstance(value, tuple):
        value = " ".join(value)
    nargs = action.nargs
    if nargs == 0:
        shown = None
    elif nargs == "?":
        shown = f"[{value}]"
    elif nargs == "+":
        shown = f"{value} ..."
    elif nargs == "*":
        shown = f"[{value} ...]"
    elif isinstance(nargs, int) and nargs > 1:
        shown = " ".join([value] * nargs)
    else:
        shown = value
    if not action.option_strings:
        return f"`{shown}`"
    return ", ".join(f"`{flag} {shown}`" if shown and i == 0 else f"`{flag}`"
                     for i, flag in enumerate(action.option_strings))


def _help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """The help text with argparse's ``%(default)s``-style fields filled in, as ``--help`` shows it."""
    text = action.help or ""
    params = {name: getattr(action, name) for name in
              ("option_strings", "dest", "nargs", "const", "default", "type", "choices", "required", "help",
               "metavar")}
    params = {k: v for k, v in params.items() if not (isinstance(v, str) and v == argparse.SUPPRESS)}
    params["prog"] = parser.prog
    for name in ("default", "choices", "metavar", "const", "type", "nargs", "dest", "required"):
        params.setdefault(name, "")
    if params.get("choices"):
        params["choices"] = ", ".join(str(c) for c in action.choices)
    try:
        text = text % params
    except (KeyError, TypeError, ValueError):
        pass  # a literal % sign that is not a format: shown as written
    if action.required:
        text = f"required; {text}" if text else "required"
    return text


def _choices(action: argparse.Action) -> str:
    if not action.choices:
        return ""
    return ", ".join(f"`{choice}`" for choice in action.choices)


def _cell(text: str) -> str:
    """One table cell: a ``|`` would end the cell, a line break the row."""
    return " ".join(text.split()).replace("|", "\\|")
