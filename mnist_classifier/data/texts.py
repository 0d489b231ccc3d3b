"""``--dataset text:PATH``: a folder of ``.txt`` files, one subfolder per class, or a CSV/TSV file of
texts and labels.

A folder has the layout of Keras' ``text_dataset_from_directory`` and scikit-learn's ``load_files``:
``PATH/train`` and ``PATH/test`` (and ``PATH/valid``) when they exist, as ``folder:`` has them;
otherwise 20% of each class is the test set (seeded, stratified). A file that is not text (NUL
bytes, or no encoding fits) is skipped with a line and counted, as an odd picture is. A table is
read as ``csv:`` reads one (encoding, delimiter, BOM, CRLF); its text column is named with
``--text_column`` or found: the column of long, mostly distinct cells. Texts are kept as read;
tokenising (``data/tokens.py``) is the kind's record, fitted on the training rows.
"""

from __future__ import annotations

import codecs
import os
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from stat import S_ISREG

import torch

from ..errors import UserError, printable
from . import token_cache
from .csv_data import UTF8, CsvTable, TableOptions, detect_encoding, encoding_named
from .dataset import CLASSIFICATION, Dataset, split_test
from .folders import class_folders, matched_classes, split_folders
from .targets import class_names, many_classes_note, targets
from .tokens import MAX_TEXT_CHARS

TEXT_SUFFIXES = (".txt",)
# A text column is found among columns whose cells are mostly distinct (a label repeats).
DISTINCT_SHARE = 0.5


@dataclass
class Texts:
    """What was read: each split's texts and class indices, and what was skipped on the way."""

    classes: list[str]
    splits: dict[str, tuple[list[str], list[int]]]
    notes: list[str] = field(default_factory=list)  # a line per file skipped
    skipped: int = 0  # files that are not text
    cut: int = 0  # texts longer than MAX_TEXT_CHARS, read up to it
    ignored: int = 0  # files whose names are not .txt
    dropped: int = 0  # table rows without a label
    column: str | None = None  # a table's text column


def load_texts(path: Path, target: str | None = None, text_column: str | None = None, encoding: str | None = None,
               delimiter: str | None = None, data_dir: str | None = None) -> Dataset:
    """The texts ``text:PATH`` names (a folder, or a CSV/TSV file), as a ``Dataset`` of strings; with a
    ``data_dir``, strings whose ids are cached there (``data/token_cache.py``)."""
    if not path.exists():
        raise UserError(f"text:{path}: no such folder or file")
    if path.is_dir():
        if target or text_column:
            raise UserError(f"text:{path}: --target and --text_column name a table's columns; a folder's classes "
                            "are its subfolders")
        texts, what = read_folder(path, encoding), f"folder {path.name}"
    else:
        texts, what = read_table(path, target, text_column, encoding, delimiter)
    dataset = as_dataset(path, texts, what)
    return cached(dataset, path, data_dir) if data_dir else dataset


def cached(dataset: Dataset, path: Path, data_dir: str) -> Dataset:
    """``dataset`` with each split's texts told where their ids are cached."""
    folder, note = token_cache.cache_folder(data_dir, path)
    dataset.notes += [note] if note else []
    for part in ("train", "test", "valid"):
        if getattr(dataset, part) is not None:
            x, y = getattr(dataset, part)
            setattr(dataset, part, (token_cache.CachedTexts(x, folder), y))
    return dataset


def as_dataset(path: Path, texts: Texts, what: str) -> Dataset:
    if "all" in texts.splits:
        x, y = texts.splits.pop("all")
        (x_train, y_train), (x_test, y_test) = _split(x, torch.tensor(y, dtype=torch.long))
        texts.splits["train"], texts.splits["test"] = (list(x_train), y_train), (list(x_test), y_test)
    parts = {split: (x, torch.as_tensor(y, dtype=torch.long)) for split, (x, y) in texts.splits.items()}
    dataset = Dataset(f"text:{path}", parts["train"], parts["test"], CLASSIFICATION, (1,), texts.classes,
                      feature_names=[texts.column] if texts.column else None, valid=parts.get("valid"),
                      notes=texts.notes, skipped=texts.skipped)
    dataset.found = describe(texts, dataset, what)
    return dataset


def _split(x: list[str], y: torch.Tensor):
    """A seeded test split, stratified when every class has two texts or more."""
    counts = torch.bincount(y)
    return split_test(x, y, stratify=bool((counts[counts > 0] >= 2).all()))


def describe(texts: Texts, dataset: Dataset, what: str) -> str:
    """'text reviews.csv: 2 classes (neg 4,980, pos 5,020), 10,000 texts, 12 empty': the part of the
    first line the reader knows; the kind adds the tokens'."""
    labels = [int(label) for part in (dataset.train, dataset.test, dataset.valid) if part for label in part[1]]
    counts = Counter(labels)
    shown = ", ".join(f"{name} {counts[i]:,}" for i, name in enumerate(texts.classes[:6]))
    shown += ", ..." if len(texts.classes) > 6 else ""
    every = [t for part in (dataset.train, dataset.test, dataset.valid) if part for t in part[0]]
    line = f"text {what}: {len(texts.classes)} classes ({shown}), {len(every):,} texts"
    empty = sum(1 for t in every if not t.strip())
    tail = [f"{empty:,} empty"] if empty else []
    tail += [f"{texts.skipped:,} files skipped (not text)"] if texts.skipped else []
    tail += [f"{texts.ignored:,} files ignored (not .txt)"] if texts.ignored else []
    tail += [f"{texts.dropped:,} rows without a label left out"] if texts.dropped else []
    tail += [f"{texts.cut:,} longer than {MAX_TEXT_CHARS:,} characters read up to there"] if texts.cut else []
    return line + (", " + ", ".join(tail) if tail else "")


# --- a folder of .txt files ------------------------------------------------------------------------

def read_folder(root: Path, encoding: str | None = None) -> Texts:
    """Each split's texts, a class per subfolder of ``train/`` (or of the folder itself)."""
    parts = split_folders(root, source="text", things="texts")
    classes = class_folders(parts.get("train", root), set(), example="1.txt")
    texts = Texts([printable(name) for name in classes], {})
    for split, folder in parts.items():
        x, y = [], []
        for index, name in enumerate(matched_classes(folder, classes, parts.get("train", root), set())):
            for file in _text_files(texts, folder / name) if name is not None else ():
                text = read_text_file(file, encoding, texts)
                if text is not None:
                    x.append(text)
                    y.append(index)
        texts.splits[split] = (x, y)
    _check_classes(root, texts)
    return texts


def _text_files(texts: Texts, folder: Path) -> list[Path]:
    """The .txt files under a class folder, its subfolders too, in name order; others counted."""
    found = []
    for current, folders, files in os.walk(folder, followlinks=False):
        folders[:] = sorted(f for f in folders if not f.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            if not name.lower().endswith(TEXT_SUFFIXES):
                texts.ignored += 1
                continue
            found.append(Path(current) / name)
    return found


def read_text_file(path: Path, encoding: str | None, texts: Texts) -> str | None:
    """The file's text, or None (noted and counted) when it is not text or cannot be read."""
    try:
        if not S_ISREG(path.stat().st_mode):
            raise OSError("not a regular file")
        with open(path, "rb") as f:
            raw = f.read(MAX_TEXT_CHARS * 4 + 4)  # enough bytes for MAX_TEXT_CHARS in any encoding
    except OSError as e:
        return _skip(texts, path, f"cannot be read ({e.strerror or e})")
    try:
        text = decode(raw, encoding)
    except UserError as e:
        return _skip(texts, path, str(e))
    if len(text) > MAX_TEXT_CHARS:
        texts.cut += 1
        text = text[:MAX_TEXT_CHARS]
    return text


def _skip(texts: Texts, path: Path, why: str) -> None:
    texts.notes.append(f"skipped {path}: {why}")
    texts.skipped += 1
    return None


def decode(raw: bytes, encoding: str | None = None) -> str:
    """Bytes of a text file as text: its BOM's encoding, else ``encoding``, else UTF-8 or what
    charset-normalizer finds; refused (``UserError``) when they hold NUL bytes (not text)."""
    if raw.startswith(codecs.BOM_UTF8):
        return raw[len(codecs.BOM_UTF8):].decode(UTF8, errors="replace")
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return raw.decode("utf-16", errors="replace")
    if b"\x00" in raw:
        raise UserError("not text (it holds NUL bytes)")
    name = encoding_named(encoding) if encoding else detect_encoding(raw)
    return raw.decode(name, errors="replace").replace("\r\n", "\n").replace("\r", "\n")


def _check_classes(root: Path, texts: Texts) -> None:
    for split in ("test", "valid"):
        if split in texts.splits and not texts.splits[split][0]:
            raise UserError(f"{root / split}: no texts in this split; add some or remove the folder")
    _, labels = texts.splits.get("train", texts.splits.get("all"))
    counts = Counter(labels)
    if not labels:
        raise UserError(f"text:{root}: no .txt files found")
    empty = [name for index, name in enumerate(texts.classes) if not counts[index]]
    if empty:
        where = root / ("train" if "train" in texts.splits else "") / empty[0]
        raise UserError(f"{where}: no texts in this class folder; add some or remove the folder")
    if len(texts.classes) < 2:
        raise UserError(f"text:{root}: only one class ({texts.classes[0]}); a classifier needs two or more class "
                        "folders")


# --- a CSV or TSV file ----------------------------------------------------------------------------

def read_table(path: Path, target: str | None, text_column: str | None, encoding: str | None,
               delimiter: str | None) -> tuple[Texts, str]:
    """The texts and labels of a table: ``target`` (default: the last column) and the text column."""
    options = TableOptions(delimiter=delimiter or ("\t" if path.suffix.lower() == ".tsv" else None),
                           encoding=encoding)
    table = CsvTable.read(path, options, all_text=True)
    header = table.header
    target = target or header[-1]
    for flag, name in (("--target", target), ("--text_column", text_column)):
        if name is not None and name not in header:
            raise UserError(f"{path}: no column {name!r} (columns: {', '.join(header)}); choose one with {flag}")
    column = text_column or find_text_column(path, table.frame, target)
    if column == target:
        raise UserError(f"{path}: --text_column and --target name the same column, {target!r}")
    labels = [label.strip() for label in table.frame[target]]
    keep = [i for i, label in enumerate(labels) if label]
    cells = table.frame[column].tolist()
    texts = Texts(class_names(path, [labels[i] for i in keep]), {}, notes=table.notes, dropped=len(labels) - len(keep),
                  column=column)
    if texts.dropped:
        texts.notes.append(f"{path}: {texts.dropped:,} rows have no label in {target!r}; left out")
    texts.notes += many_classes_note(path.name, len(texts.classes), len(keep))
    x = [_cut(texts, cells[i]) for i in keep]
    y = targets(path, [labels[i] for i in keep], CLASSIFICATION, texts.classes).tolist()
    texts.splits["all"] = (x, y)
    return texts, f"{path.name} ({column!r}, labels {target!r})"


def _cut(texts: Texts, cell: str) -> str:
    if len(cell) > MAX_TEXT_CHARS:
        texts.cut += 1
        return cell[:MAX_TEXT_CHARS]
    return cell


def find_text_column(path: Path, frame, target: str) -> str:
    """The column of free text: among those whose cells are mostly distinct, the longest (median
    length); refused when no column looks like text."""
    lengths = {}
    for name in frame.columns:
        if name == target:
            continue
        cells = frame[name].astype(str)
        if cells.nunique() >= DISTINCT_SHARE * len(cells) and cells.str.contains(r"[^\W\d_]", regex=True).mean() > 0.5:
            lengths[name] = statistics.median(cells.str.len())
    if not lengths:
        raise UserError(f"{path}: no column of free text found besides {target!r} (columns: "
                        f"{', '.join(frame.columns)}); name it with --text_column")
    return max(lengths, key=lengths.get)



def text_column_of(path: Path, frame, trained_on: list[str] | None) -> str:
    """The column of texts to predict on in a table: the one training read, when the file has it;
    else the one ``find_text_column`` finds."""
    if trained_on and trained_on[0] in frame.columns:
        return trained_on[0]
    return find_text_column(path, frame, target=None)


# --- texts to predict on --------------------------------------------------------------------------

def read_text_input(path: str, encoding: str | None, stdin) -> tuple[list[str], list[str], list[str]]:
    """The texts ``mnist-predict`` is given as PATH: a .txt file, a folder's .txt files, or ``-`` (one
    text on ``stdin``); with the names that label their predictions, and a line per file skipped."""
    if path == "-":
        return ["-"], [decode(stdin.buffer.read(), encoding)], []
    where = Path(path)
    if not where.exists():
        raise UserError(f"{path}: no such file or folder")
    texts = Texts([], {})
    files = _text_files(texts, where) if where.is_dir() else [where]
    if where.is_dir() and not files:
        raise UserError(f"{path}: no .txt files in this folder")
    read = [(str(file), read_text_file(file, encoding, texts)) for file in files]
    if texts.notes and not where.is_dir():
        raise UserError(texts.notes[0].removeprefix("skipped "))
    kept = [(name, text) for name, text in read if text is not None]
    return [name for name, _ in kept], [text for _, text in kept], texts.notes
