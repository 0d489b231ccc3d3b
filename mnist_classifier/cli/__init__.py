"""The commands (``mnist-train``, ``mnist-evaluate``, ``mnist-predict``) and the edge they share:
one-line errors, exit status 2."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import AgreedError, ParameterError, UserError, in_flags
from ..options import add_flag, check_options, option, options_of, shown


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line on stderr (no usage dump), still with exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


@dataclass
class ModelFileOptions:
    """What every command but ``mnist-train`` reads: a model file. A command's options subclass it."""

    model_fn: str = option(None, "a model file written by mnist-train", cli={"required": True})


def options_parser(options, prog: str, description: str | None) -> OneLineParser:
    """A command's parser made from its options dataclass (``options.option`` fields): one flag each,
    its help text, default, bounds and choices written once, in the dataclass."""
    parser = OneLineParser(prog=prog, description=description)
    for opt in options_of(options).values():
        shows_default = opt.default is not None and opt.kind is not bool and "required" not in opt.spec.cli
        add_flag(parser, opt, opt.default, f"{opt.help} (default: {shown(opt.default)})" if shows_default else None)
    return parser


def parsed_options(options, args: argparse.Namespace):
    """The parsed flags as an ``options`` instance, each checked against its option."""
    values = {name: getattr(args, name) for name in options_of(options)}
    problem = check_options(options, values)
    if problem:
        raise ParameterError(problem)
    return options(**values)


def run_cli(prog: str, action: Callable[[], object]) -> None:
    """Run ``action``; a ``UserError`` becomes one line on stderr and exit status 2, never a traceback."""
    try:
        action()
    except AgreedError:  # rank 0 of a distributed run printed it: once is enough
        sys.exit(2)
    except UserError as e:
        print(f"{prog}: error: {in_flags(e)}", file=sys.stderr)
        sys.exit(2)
    except OSError as e:  # the file system refused something no check foresaw (a name too long, ...)
        where = f"{e.filename}: " if e.filename else ""
        print(f"{prog}: error: {where}{e.strerror or e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:  # Ctrl-C outside training: files are written atomically, so nothing is half-done
        print(f"\n{prog}: interrupted", file=sys.stderr)
        sys.exit(130)
