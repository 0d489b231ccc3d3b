"""What every model module declares about its command-line options: plain values, no argparse."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Option:
    """One constructor option a model takes from the command line (``--NAME``).

    ``kind`` is ``int``, ``float``, ``bool`` (a switch), ``str`` or ``list`` (comma-separated
    integers). Numbers (and every item of a list) must lie in [``low``, ``high``].
    """

    kind: type
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] | None = None

    def problem(self, name: str, value: Any) -> str | None:
        """Why ``value`` is not acceptable for ``--name``, or None when it is."""
        if value is None:
            return None if self.default is None else f"--{name} needs a value"
        kinds = {int: (int,), float: (int, float), bool: (bool,), str: (str,), list: (list,)}[self.kind]
        items = value if isinstance(value, list) else []
        if not isinstance(value, kinds) or isinstance(value, bool) != (self.kind is bool) or any(
                isinstance(item, bool) or not isinstance(item, int) for item in items):
            return f"--{name} must be {_described(self.kind)}, got {value!r}"
        if self.choices is not None and value not in self.choices:
            return f"--{name} must be one of {', '.join(self.choices)}, got {value!r}"
        numbers = value if isinstance(value, list) else [value] if self.kind in (int, float) else []
        if self.kind is list and not numbers:
            return f"--{name} needs at least one value"
        for number in numbers:
            if self.low is not None and number < self.low or self.high is not None and number > self.high:
                return f"--{name} must lie in [{self.low:g}, {self.high:g}], got {value}"
        return None


def _described(kind: type) -> str:
    return {int: "an integer", float: "a number", bool: "true or false", str: "a word",
            list: "comma-separated integers"}[kind]


def image_shape(input_shape: tuple[int, ...]) -> str | None:
    """None for (channels, height, width) images; otherwise why a model that needs images cannot
    read this input."""
    if len(input_shape) != 3:
        return f"it reads images (channels, height, width), but this dataset's rows are {len(input_shape)}-D " \
               f"{tuple(input_shape)}"
    return None
