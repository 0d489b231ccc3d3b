"""Typed options, each fact written once: a dataclass field made with ``option(...)`` carries its
default, help text, bounds and choices. The command line (flags and ``--help``), the validation,
the estimators' parameters and the generated flags page all read them from there.

This module imports nothing of the project but ``errors`` (which imports nothing), so that the model
families can declare their options with it too.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from .errors import quoted

KINDS = (bool, int, float, str, list)


@dataclass(frozen=True)
class Spec:
    """What a field says about itself beyond its type and default.

    ``low``/``high`` bound a number (each item of a list), open where ``low_open``/``high_open``.
    (A field without a ``Spec`` is one the run records but nobody types: no flag.) ``resumable``:
    may change when a run is resumed. ``applies``: ``"csv"`` (``"folder"``, or several: ``("csv", "text")``) for
    flags that mean something only for that kind of ``--dataset KIND:PATH``.
    ``estimator``: also a parameter of the scikit-learn estimators. ``cli``: extra argparse
    keywords (``metavar``, ``nargs``, ``const``, ``type``, ``default``: a callable for a default that
    depends on the machine).
    """

    help: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple | None = None
    resumable: bool = False
    applies: str | tuple[str, ...] | None = None
    estimator: bool = False
    cli: dict = field(default_factory=dict)

    def applies_to(self, prefix: str | None) -> bool:
        """Whether the flag means something for ``--dataset PREFIX:PATH`` (every flag that names none does)."""
        return self.applies is None or prefix in ((self.applies,) if isinstance(self.applies, str) else self.applies)


def option(default: Any = None, help: str = "", *, default_factory=None, **spec) -> Any:
    """A dataclass field with its ``Spec`` (keywords as ``Spec``'s)."""
    metadata = {"spec": Spec(help, **spec)}
    if isinstance(default, list):  # a dataclass default must not be shared between instances
        default_factory = default.copy
    if default_factory is not None:
        return field(default_factory=default_factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class Option:
    """One option as the flags and checks see it: its name, kind, default and ``Spec``."""

    name: str
    kind: type
    nullable: bool
    default: Any
    spec: Spec

    @property
    def help(self) -> str:
        return self.spec.help

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not acceptable for this option, or None when it is: a sentence that begins
        with the option's name (``lr must be positive, got 0``), as a library speaks; the command line
        makes the name its flag."""
        name, spec = self.name, self.spec
        if value is None:
            return None if self.nullable else f"{name} needs a value"
        problem = _kind_problem(name, self.kind, value)
        if problem:
            return problem
        if spec.choices is not None and value not in spec.choices:
            return f"{name} must be one of {', '.join(map(str, spec.choices))}, got {quoted(value)}"
        if self.kind is list and not value:
            return f"{name} needs at least one value"
        numbers = value if self.kind is list else [value] if self.kind in (int, float) else []
        for number in numbers:
            if not _inside(number, spec):
                return f"{name} {_bounds_words(self.kind, spec)}, got {quoted(value)}"
        return None


def options_of(cls) -> dict[str, Option]:
    """The ``Option`` of each field of dataclass ``cls`` that has a ``Spec``, in field order."""
    hints = typing.get_type_hints(cls)
    found = {}
    for f in dataclasses.fields(cls):
        spec = f.metadata.get("spec")
        if spec is None:
            continue
        kind, nullable = _kind(hints[f.name])
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        found[f.name] = Option(f.name, kind, nullable or default is None, default, spec)
    return found


def check_options(cls, values: dict) -> str | None:
    """The first problem with ``values`` (a field name -> value) for ``cls``'s options, or None."""
    for name, opt in options_of(cls).items():
        if name in values:
            problem = opt.problem(values[name])
            if problem:
                return problem
    return None


def add_flag(parser, opt: Option, default: Any, help_text: str | None = None) -> None:
    """``--name`` for ``opt`` on an argparse parser or group; ``default`` is what an unset flag gives."""
    kwargs = {k: v for k, v in opt.spec.cli.items() if k != "default"}
    kwargs["default"] = default
    kwargs["help"] = (help_text or opt.help).replace("%", "%%")
    if opt.kind is bool:
        kwargs["action"] = argparse.BooleanOptionalAction
    else:
        kwargs.setdefault("type", int_list if opt.kind is list else opt.kind)
        if opt.spec.choices is not None:
            kwargs["choices"] = list(opt.spec.choices)
    parser.add_argument(f"--{opt.name}", **kwargs)


def from_text(opt: Option, value: Any) -> Any:
    """A value from a settings file, read as the flag reads its text: ``"256,256"`` as a list,
    ``"1e-3"`` as a number, ``tab`` as a delimiter; YAML's ``on``/``off`` (booleans to it) as words."""
    if opt.kind is str and isinstance(value, bool):
        return "on" if value else "off"
    if not isinstance(value, str) or (opt.kind is str and "type" not in opt.spec.cli):
        return value
    convert = opt.spec.cli.get("type") or (int_list if opt.kind is list else opt.kind)
    if opt.kind is bool:
        convert = {"true": True, "false": False, "yes": True, "no": False}.get
    try:
        converted = convert(value.strip().lower() if opt.kind is bool else value)
    except (ValueError, argparse.ArgumentTypeError):
        return value  # left as it is: the option's check names the flag and the value
    return value if converted is None else converted


def shown(value: Any) -> str:
    """A default as ``--help`` shows it."""
    if isinstance(value, list):
        return ",".join(map(str, value))
    return "computed from the other options" if value is None else str(value)


def int_list(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {quoted(text)}") from None


def _kind(annotation) -> tuple[type, bool]:
    """(int, True) for ``int | None``; (list, False) for ``list[int]``."""
    args = typing.get_args(annotation) if isinstance(annotation, types.UnionType) or \
        typing.get_origin(annotation) is typing.Union else (annotation,)
    nullable = type(None) in args
    (base,) = [a for a in args if a is not type(None)]
    base = typing.get_origin(base) or base
    if base not in KINDS:
        raise TypeError(f"an option must be one of {KINDS}, not {annotation}")
    return base, nullable


def _kind_problem(name: str, kind: type, value: Any) -> str | None:
    # bool is an int to Python: True must not pass as a number, nor 1 as a switch.
    if kind is bool:
        return None if isinstance(value, bool) else f"{name} must be true or false, got {quoted(value)}"
    if kind is list:
        if isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return None
        return f"{name} must be comma-separated integers, got {quoted(value)}"
    accepted = {int: (int,), float: (int, float), str: (str,)}[kind]
    if isinstance(value, bool) or not isinstance(value, accepted):
        return f"{name} must be {'an integer' if kind is int else 'a number' if kind is float else 'a word'}, " \
               f"got {quoted(value)}"
    if kind is float and not math.isfinite(value):
        return f"{name} must be a finite number, got {quoted(value)}"
    return None


def _inside(number: float, spec: Spec) -> bool:
    if spec.low is not None and (number < spec.low or spec.low_open and number == spec.low):
        return False
    return not (spec.high is not None and (number > spec.high or spec.high_open and number == spec.high))


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else f"{value:g}"


def _bounds_words(kind: type, spec: Spec) -> str:
    """E.g. "must be a positive integer", "must lie in [1, 64]", "must be between 0 and 1 (exclusive)"."""
    low, high = (None if v is None else _number(v) for v in (spec.low, spec.high))
    if high is None:
        if kind is int and spec.low == 1:
            return "must be a positive integer"
        if spec.low == 0:
            return "must be positive" if spec.low_open else "must not be negative"
        return f"must be {'above' if spec.low_open else 'at least'} {low}"
    if low is None:
        return f"must be {'below' if spec.high_open else 'at most'} {high}"
    if spec.low_open and spec.high_open:
        return f"must be between {low} and {high} (exclusive)"
    if spec.low_open:
        return f"must be above {low} and at most {high}"
    return f"must lie in [{low}, {high}{')' if spec.high_open else ']'}"
