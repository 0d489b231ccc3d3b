"""Your own data: a CSV file of numeric feature columns and one target column.

Every problem is refused with one line that names the file, the line and the column.
"""

from __future__ import annotations

import csv
import math
import re
import stat
from decimal import Decimal
from pathlib import Path

import torch

from ..errors import UserError
from .dataset import CLASSIFICATION, REGRESSION, Dataset, split_test

MISSING = {"", "nan", "na", "n/a", "null", "none"}
FLOAT32_MAX = 3.4028234e38
# A numeric target with more distinct values than this (and than half the rows) is a quantity, not classes.
MAX_NUMERIC_CLASSES = 20
INTEGER = re.compile(r"[+-]?\d+")


def load_csv(
    path: Path,
    target: str | None = None,
    test_csv: str | Path | None = None,
    drop_na: bool = False,
    task: str = CLASSIFICATION,
) -> Dataset:
    """Features from every column but ``target`` (default: the last); test rows from ``test_csv``
    or, without one, a fixed 20% of the file."""
    header, rows = _read_rows(path)
    target = target or header[-1]
    if target not in header:
        raise UserError(f"{path}: no column {target!r} (columns: {', '.join(header)}); choose one with --target")
    features, labels = _parse(path, header, rows, target, drop_na, task)
    if test_csv is None:
        train, test, classes = _split_one_file(path, features, labels, task)
    else:
        test_header, test_rows = _read_rows(Path(test_csv))
        if test_header != header:
            raise UserError(f"{test_csv}: its columns differ from {path}'s ({', '.join(header)})")
        test_features, test_labels = _parse(Path(test_csv), header, test_rows, target, drop_na, task)
        classes = _classes(path, labels) if task == CLASSIFICATION else None
        train = (features, _targets(path, labels, task, classes))
        test = (test_features, _targets(Path(test_csv), test_labels, task, classes))
    names = [column for column in header if column != target]
    return Dataset(f"csv:{path}", train, test, task, (len(names),), classes, feature_names=names)


def _read_rows(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    try:
        if not stat.S_ISREG(path.stat().st_mode):  # a FIFO would block, a folder cannot be read
            raise UserError(f"{path}: not a regular file; give a CSV file")
        with open(path, newline="", encoding="utf-8-sig") as f:
            lines = [(number, row) for number, row in enumerate(csv.reader(f), start=1) if row]
    except FileNotFoundError:
        raise UserError(f"{path}: no such CSV file") from None
    except (UnicodeDecodeError, csv.Error) as e:
        raise UserError(f"{path}: not a readable CSV text file ({e})") from e
    except OSError as e:
        raise UserError(f"{path}: cannot be read ({e.strerror})") from e
    if not lines:
        raise UserError(f"{path}: the file is empty")
    header = [name.strip() for name in lines[0][1]]
    if len(header) < 2:
        raise UserError(f"{path}: needs at least one feature column and a target column, found {header}")
    unnamed = [i + 1 for i, name in enumerate(header) if not name]
    if unnamed:
        raise UserError(f"{path}, line 1: column {unnamed[0]} has no name; every column needs one")
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise UserError(f"{path}, line 1: the column name {repeated[0]!r} appears more than once")
    if len(lines) == 1:
        raise UserError(f"{path}: has a header but no data rows")
    return header, lines[1:]


def _parse(path: Path, header: list[str], rows, target: str, drop_na: bool, task: str) -> tuple[torch.Tensor, list]:
    """Feature matrix and targets (label strings, or numbers for regression); missing cells
    refused or, with ``drop_na``, dropped."""
    target_index = header.index(target)
    features, labels = [], []
    for number, row in rows:
        if len(row) != len(header):
            raise UserError(f"{path}, line {number}: {len(row)} cells, but the header has {len(header)} columns")
        missing = [header[i] for i, cell in enumerate(row) if cell.strip().lower() in MISSING]
        if missing:
            if drop_na:
                continue
            raise UserError(f"{path}, line {number}, column {missing[0]!r}: empty or NaN cell; "
                            "fill it in or pass --drop_na to drop such rows")
        values = []
        for i, cell in enumerate(row):
            if i != target_index:
                values.append(_number(path, number, header[i], cell))
        features.append(values)
        label = row[target_index].strip()
        labels.append(_number(path, number, target, label, "a regression target must be numeric")
                      if task == REGRESSION else _canonical_label(label))
    if not features:
        raise UserError(f"{path}: no rows left after dropping those with missing cells")
    return torch.tensor(features, dtype=torch.float32), labels


def _number(path: Path, number: int, column: str, cell: str, rule: str = "features must be numeric") -> float:
    try:
        value = float(cell)
    except ValueError:
        raise UserError(f"{path}, line {number}, column {column!r}: {cell.strip()!r} is not a number "
                        f"({rule})") from None
    if not math.isfinite(value):
        raise UserError(f"{path}, line {number}, column {column!r}: {cell.strip()!r} is not a finite number")
    if abs(value) > FLOAT32_MAX:
        raise UserError(f"{path}, line {number}, column {column!r}: {cell.strip()!r} is beyond what 32-bit floats "
                        "hold (about 3.4e38); rescale the column")
    return value


def _canonical_label(label: str) -> str:
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


def _classes(path: Path, labels: list[str]) -> list[str]:
    """Class names in a natural order: numerically when every label is a number."""
    unique = set(labels)
    if len(unique) < 2:
        raise UserError(f"{path}: the target has a single class ({next(iter(unique))!r}); "
                        "a classifier needs at least two")
    try:
        for label in unique:
            float(label)
    except ValueError:
        return sorted(unique)
    classes = sorted(unique, key=Decimal)  # exact: long integer codes must not tie as floats
    if len(classes) > max(MAX_NUMERIC_CLASSES, len(labels) / 2):
        raise UserError(f"{path}: the target has {len(classes)} distinct numbers in {len(labels)} rows, too many to "
                        "be classes; if it is a quantity, pass --task regression")
    return classes


def _targets(path: Path, labels: list, task: str, classes: list[str] | None) -> torch.Tensor:
    if task == REGRESSION:
        if len(set(labels)) < 2:
            raise UserError(f"{path}: the target is {labels[0]} in every row; there is nothing to learn")
        return torch.tensor(labels, dtype=torch.float32).unsqueeze(1)
    index = {name: i for i, name in enumerate(classes)}
    unknown = sorted(set(labels) - index.keys())
    if unknown:
        raise UserError(f"{path}: class {unknown[0]!r} does not occur in the training data")
    return torch.tensor([index[label] for label in labels], dtype=torch.long)


def _split_one_file(path: Path, features: torch.Tensor, labels: list, task: str):
    classes = _classes(path, labels) if task == CLASSIFICATION else None
    y = _targets(path, labels, task, classes)
    # Stratify when every class can appear on both sides; tiny classes make that impossible.
    stratify = task == CLASSIFICATION and min(torch.bincount(y).tolist()) >= 2
    train, test = split_test(features, y, stratify=stratify)
    return train, test, classes
