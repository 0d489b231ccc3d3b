"""Your own data: a CSV file of feature columns (numbers, yes/no, text) and one target column.

pandas reads the file (quoted fields, BOMs, CRLF, any one-character delimiter, a million rows
in seconds). Every problem is refused with one line that names the file, the line and the column.
The features stay raw here; ``tables.py`` decides how each column becomes numbers, from the
training rows only.
"""

from __future__ import annotations

import csv
import math
import re
import stat
import warnings
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..errors import UserError
from .dataset import CLASSIFICATION, REGRESSION, Dataset, split_test
from .tables import MISSING, as_number_column, is_text

# A numeric target with more distinct values than this (and than half the rows) is a quantity, not classes.
MAX_NUMERIC_CLASSES = 20
INTEGER = re.compile(r"[+-]?\d+")
DELIMITERS = ",;\t|"  # what sniffing may choose among
SNIFF_BYTES = 64 * 1024


def load_csv(
    path: Path,
    target: str | None = None,
    test_csv: str | Path | None = None,
    drop_na: bool = False,
    task: str = CLASSIFICATION,
    delimiter: str | None = None,
) -> Dataset:
    """Features from every column but ``target`` (default: the last); test rows from ``test_csv``
    or, without one, a fixed 20% of the file. ``delimiter`` None: sniffed from the file's start."""
    table = CsvTable.read(path, delimiter, text=target or "last")
    target = target or table.header[-1]
    if target not in table.header:
        raise UserError(f"{path}: no column {target!r} (columns: {', '.join(table.header)}); choose one with --target")
    features, labels = table.parse(target, drop_na, task)
    if test_csv is None:
        train, test, classes = _split_one_file(path, features, labels, task)
    else:
        # Columns that are text in training are text in the test file too: a level "7" stays "7".
        text = [name for name in features.columns if not pd.api.types.is_float_dtype(features[name])]
        test_table = CsvTable.read(Path(test_csv), delimiter, text=[*text, target])
        if test_table.header != table.header:
            raise UserError(f"{test_csv}: its columns differ from {path}'s ({', '.join(table.header)})")
        test_features, test_labels = test_table.parse(target, drop_na, task)
        classes = _classes(path, labels) if task == CLASSIFICATION else None
        train = (features, _targets(path, labels, task, classes))
        test = (test_features, _targets(Path(test_csv), test_labels, task, classes))
    names = list(features.columns)
    return Dataset(f"csv:{path}", train, test, task, (len(names),), classes, feature_names=names)


def read_rows(path: Path, delimiter: str | None = None, columns: list[str] | None = None) -> pd.DataFrame:
    """Rows to predict on: the file's cells as text, exactly as written (the model's column specs
    turn them into numbers), with a check that it has ``columns`` (others are ignored)."""
    table = CsvTable.read(path, delimiter, min_columns=1, all_text=True)
    missing = [name for name in columns or [] if name not in table.header]
    if missing:
        raise UserError(f"{path}: no column {missing[0]!r}; the model needs {', '.join(columns)}")
    return table.frame


class CsvTable:
    """One CSV file, read: its header, its rows as text-or-number columns, and where each row was."""

    def __init__(self, path: Path, header: list[str], frame: pd.DataFrame | None, delimiter: str):
        self.path, self.header, self.frame, self.delimiter = path, header, frame, delimiter
        self.text: list[str] = []  # columns read as text that stay text

    @classmethod
    def read(cls, path: Path, delimiter: str | None = None, min_columns: int = 2, text: list[str] | str = (),
             all_text: bool = False) -> CsvTable:
        """The file's rows; numeric columns as numbers, the others (and the columns ``text`` names, the
        header's last when "last"; every column with ``all_text``) as text."""
        sample = _sample(path)
        delimiter = delimiter or _sniff(sample)
        header = _header(path, sample, delimiter, min_columns)
        text = [header[-1]] if text == "last" else [name for name in ([text] if isinstance(text, str) else text)
                                                   if name in header]
        table = cls(path, header, None, delimiter)
        table.text = text
        try:
            # No NA filter: "NA" in a text column is the word until parse() decides it is a missing cell.
            # A row longer than the header must be refused, not taken as an index or cut: warnings are errors.
            with warnings.catch_warnings():
                warnings.simplefilter("error", pd.errors.ParserWarning)
                table.frame = pd.read_csv(path, sep=delimiter, encoding="utf-8-sig", header=0, names=header,
                                          index_col=False, dtype=str if all_text else dict.fromkeys(text, str),
                                          na_filter=False, skipinitialspace=True, engine="c", quotechar='"')
        except (pd.errors.ParserError, pd.errors.ParserWarning) as e:
            raise table.ragged(e) from None
        except UnicodeDecodeError as e:
            raise UserError(f"{path}: not a readable CSV text file; save it as UTF-8 ({e})") from e
        except OSError as e:
            raise UserError(f"{path}: cannot be read ({e.strerror})") from e
        if table.frame.empty:
            raise UserError(f"{path}: has a header but no data rows")
        table.check_row_lengths()
        return table

    def records(self):
        """(line the record starts on, its cells) for every data row as pandas counts them."""
        with open(self.path, newline="", encoding="utf-8-sig", errors="replace") as f:
            reader = csv.reader(f, delimiter=self.delimiter, skipinitialspace=True)
            next(reader)
            start = reader.line_num + 1
            for cells in reader:
                if any(cell.strip() for cell in cells):  # pandas skips blank and whitespace-only lines
                    yield start, cells
                start = reader.line_num + 1

    def ragged(self, error: Exception) -> UserError:
        """The first row whose cells do not match the header, by line; or what the parser said."""
        for line, cells in self.records():
            if len(cells) != len(self.header):
                return UserError(f"{self.path}, line {line}: {len(cells)} cells, but the header has "
                                 f"{len(self.header)} columns")
        return UserError(f"{self.path}: cannot be read as CSV ({str(error).splitlines()[0]})")

    def check_row_lengths(self) -> None:
        """Short rows: pandas fills their missing cells silently. Only a file that has empty cells can
        hold one, so only such a file is scanned."""
        if any((self.frame[name] == "").any() for name in self.frame.columns if is_text(self.frame[name])):
            for line, cells in self.records():
                if len(cells) < len(self.header):
                    raise UserError(f"{self.path}, line {line}: {len(cells)} cells, but the header has "
                                    f"{len(self.header)} columns")

    def line_of(self, row: int) -> int:
        """The line a data row (0-based, as read) starts on: error path only."""
        for index, (line, _) in enumerate(self.records()):
            if index == row:
                return line
        return -1

    def refuse(self, row: int, column: str, problem: str) -> UserError:
        return UserError(f"{self.path}, line {self.line_of(row)}, column {column!r}: {problem}")

    def parse(self, target: str, drop_na: bool, task: str) -> tuple[pd.DataFrame, list]:
        """Feature columns (numbers as float64, text stripped) and the target's values; rows with
        missing cells refused or, with ``drop_na``, dropped."""
        frame = self.frame.apply(lambda column: column.str.strip() if is_text(column) else column)
        missing = np.column_stack([frame[name].str.lower().isin(MISSING) if is_text(frame[name])
                                   else frame[name].isna() for name in frame.columns])
        incomplete = missing.any(axis=1)
        if incomplete.any() and not drop_na:
            row = int(np.argmax(incomplete))
            column = frame.columns[int(np.argmax(missing[row]))]
            raise self.refuse(row, column, "empty or NaN cell; fill it in or pass --drop_na to drop such rows")
        frame = frame[~incomplete]
        if frame.empty:
            raise UserError(f"{self.path}: no rows left after dropping those with missing cells")
        features = frame.drop(columns=[target])
        for name in features.columns:
            if pd.api.types.is_bool_dtype(features[name]) or name in self.text:
                continue  # true/false: a yes/no column (tables.py), not the numbers 1 and 0; text: kept text
            numbers, bad, problem = as_number_column(features[name])
            if bad is not None:
                raise self.refuse(int(features.index[bad]), name, problem)
            if numbers is not None:
                features[name] = numbers
        labels = frame[target].astype(str)
        if task == REGRESSION:
            numbers, bad, problem = as_number_column(labels, rule="a regression target must be numeric")
            if bad is not None:
                raise self.refuse(int(labels.index[bad]), target, problem)
            return features.reset_index(drop=True), numbers.tolist()
        canonical = {label: _canonical_label(label) for label in labels.unique()}
        return features.reset_index(drop=True), labels.map(canonical).tolist()


def _sample(path: Path) -> str:
    try:
        if not stat.S_ISREG(path.stat().st_mode):  # a FIFO would block, a folder cannot be read
            raise UserError(f"{path}: not a regular file; give a CSV file")
        with open(path, "rb") as f:
            sample = f.read(SNIFF_BYTES)
    except FileNotFoundError:
        raise UserError(f"{path}: no such CSV file") from None
    except OSError as e:
        raise UserError(f"{path}: cannot be read ({e.strerror})") from e
    try:
        return sample.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        if e.start < len(sample) - 4:  # not just a character cut at the sample's end
            raise UserError(f"{path}: not a readable CSV text file ({e})") from e
        return sample[:e.start].decode("utf-8-sig")


def _sniff(sample: str) -> str:
    """The delimiter of the file's first lines; a comma when they do not tell."""
    lines = sample.splitlines()[:50]
    if len(sample) == SNIFF_BYTES and len(lines) > 1:
        lines = lines[:-1]  # the last line may be cut short
    try:
        return csv.Sniffer().sniff("\n".join(lines), delimiters=DELIMITERS).delimiter
    except csv.Error:
        return ","


def _header(path: Path, sample: str, delimiter: str, min_columns: int) -> list[str]:
    rows = [row for row in csv.reader(sample.splitlines(), delimiter=delimiter) if row]
    if not rows:
        raise UserError(f"{path}: the file is empty")
    header = [name.strip() for name in rows[0]]
    if len(header) < min_columns:
        raise UserError(f"{path}: needs at least one feature column and a target column, found {header} "
                        f"(if the columns are split by another character, give it with --delimiter)")
    unnamed = [i + 1 for i, name in enumerate(header) if not name]
    if unnamed:
        raise UserError(f"{path}, line 1: column {unnamed[0]} has no name; every column needs one")
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise UserError(f"{path}, line 1: the column name {repeated[0]!r} appears more than once")
    return header


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
            raise UserError(f"{path}: the target is {labels[0]:g} in every row; there is nothing to learn")
        return torch.tensor(labels, dtype=torch.float32).unsqueeze(1)
    index = {name: i for i, name in enumerate(classes)}
    unknown = sorted(set(labels) - index.keys())
    if unknown:
        raise UserError(f"{path}: class {unknown[0]!r} does not occur in the training data")
    return torch.tensor([index[label] for label in labels], dtype=torch.long)


def _split_one_file(path: Path, features: pd.DataFrame, labels: list, task: str):
    classes = _classes(path, labels) if task == CLASSIFICATION else None
    y = _targets(path, labels, task, classes)
    # Stratify when every class can appear on both sides; tiny classes make that impossible.
    stratify = task == CLASSIFICATION and min(torch.bincount(y).tolist()) >= 2
    train, test = split_test(features, y, stratify=stratify)
    return train, test, classes
