"""What a table's target column is: classes or amounts, and its values as training targets.

Without ``--task`` the target's values decide, as scikit-learn's ``type_of_target`` does: text
means classes; numbers with a fractional part (wages, prices) mean regression; whole numbers are
classes when they are few (at most ``MAX_NUMERIC_CLASSES``, or the codes 0..k-1 or 1..k with
``MIN_ROWS_PER_CODE`` rows a code on average), and amounts otherwise (ages, counts, whole prices).
A run says what it chose, and the flag that chooses otherwise, before it trains.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..errors import UserError, quoted
from .dataset import CLASSIFICATION, REGRESSION
from .tables import cell_text, number_cells

MAX_NUMERIC_CLASSES = 20
MIN_ROWS_PER_CODE = 20  # 100 codes 0..99 are classes in 2,000 rows or more (CIFAR-100's labels)
# A classifier whose classes are more than this share of its rows has about one row a class: worth a word.
MANY_CLASSES_SHARE = 0.5
INTEGER = re.compile(r"[+-]?\d+")


def infer_task(name: str, labels: pd.Series, decimal: str = ".") -> tuple[str, str | None]:
    """The task the target column ``name`` (its cells as text, gaps left out) asks for, and the line
    that says so when its cells are numbers (None for text: plainly classes)."""
    numbers = number_cells(cell_text(labels), decimal).to_numpy(dtype=np.float64)
    numbers = numbers[np.isfinite(numbers)]  # a stray word or an infinity is refused later, by line
    if len(numbers) == 0 or len(numbers) < 0.5 * len(labels):
        return CLASSIFICATION, None
    values = np.unique(numbers)
    whole = bool(np.all(values == np.round(values)))
    counted = f"({len(values):,} distinct values in {len(labels):,} rows)"
    if whole and _few_codes(values, len(labels)):
        return CLASSIFICATION, (f"target {name}: whole numbers {counted} -> classes; --task regression to treat "
                                "them as amounts")
    return REGRESSION, (f"target {name}: {'whole ' if whole else ''}numbers {counted} -> regression; "
                        "--task classification to treat them as classes")


def _few_codes(values: np.ndarray, rows: int) -> bool:
    """Whether the distinct whole numbers ``values`` look like class codes rather than amounts."""
    if len(values) <= MAX_NUMERIC_CLASSES:
        return True
    codes = values[0] in (0, 1) and values[-1] - values[0] == len(values) - 1  # 0..k-1 or 1..k, each present
    return codes and rows >= MIN_ROWS_PER_CODE * len(values)


def canonical_label(label: str) -> str:
    """Numeric labels written differently (1, 1.0, 01) name one class, written the shortest way."""
    if INTEGER.fullmatch(label):
        return str(int(label))  # exactly: long codes must not round together as floats would
    try:
        value = float(label)
    except ValueError:
        return label
    if not math.isfinite(value):
        return label
    return str(int(value)) if value.is_integer() else repr(value)


def class_names(path: Path, labels: list[str]) -> list[str]:
    """Class names in a natural order: numerically when every label is a number."""
    unique = set(labels)
    if len(unique) < 2:
        raise UserError(f"{path}: the target has a single class ({quoted(next(iter(unique)))}); "
                        "a classifier needs at least two")
    try:
        for label in unique:
            float(label)
    except ValueError:
        return sorted(unique)
    return sorted(unique, key=Decimal)  # exact: long integer codes must not tie as floats


def many_classes_note(where: str, count: int, rows: int, remedy: str = "") -> list[str]:
    """A line when ``count`` classes are about as many as the ``rows`` (an ID, a name or an amount read
    as classes), ending with ``remedy``; none otherwise."""
    if count <= max(MAX_NUMERIC_CLASSES, MANY_CLASSES_SHARE * rows):
        return []
    return [f"{where}: the target has {count:,} classes in {rows:,} rows, about one row a class, so little can be "
            f"learned per class{remedy}"]


def targets(path: Path, labels: list, task: str, classes: list[str] | None) -> torch.Tensor:
    """The target values as a tensor: regression amounts as a column of floats, classes as indices."""
    if task == REGRESSION:
        if len(set(labels)) < 2:
            raise UserError(f"{path}: the target is {labels[0]:g} in every row; there is nothing to learn")
        return torch.tensor(labels, dtype=torch.float32).unsqueeze(1)
    index = {name: i for i, name in enumerate(classes)}
    unknown = sorted(set(labels) - index.keys())
    if unknown:
        raise UserError(f"{path}: class {quoted(unknown[0])} does not occur in the training data")
    return torch.tensor([index[label] for label in labels], dtype=torch.long)
