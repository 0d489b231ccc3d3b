"""Table columns as model input: what kind each column is, and how its values become numbers.

Fitted on the training rows only, the result is a list of plain column specs that the
preprocessing record keeps (``preprocessing.py``):

- ``{"name", "type": "number"}``: the value itself (numbers stored as text count);
- ``{"name", "type": "boolean", "true": [...], "false": [...]}``: yes/no, true/false, y/n, t/f
  as 1 and 0;
- ``{"name", "type": "category", "levels": [...]}``: one slot per level seen at least
  ``MIN_LEVEL_COUNT`` times in training (the ``MAX_LEVELS`` most frequent), plus one "other"
  slot for rarer levels and for levels never seen in training, so that a new city at predict
  time is an answer, not an error.

Every consumer encodes through ``encode`` with the saved specs, so training and prediction can
never prepare a row in two ways.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from ..errors import UserError

NUMBER, BOOLEAN, CATEGORY = "number", "boolean", "category"
FLOAT32_MAX = 3.4028234e38
# Chosen on validation data by benchmarks/eval_tables.py (docs/tables.md).
MAX_LEVELS = 256
MIN_LEVEL_COUNT = 2
# Cells that mean "no value", in any letter case (compared lower-cased).
MISSING = ["", "nan", "na", "n/a", "null", "none", "<na>"]
BOOLEAN_WORDS = [("true", "false"), ("yes", "no"), ("t", "f"), ("y", "n")]


def is_text(column: pd.Series) -> bool:
    return not (pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column))


def as_number_column(column: pd.Series, rule: str | None = None) -> tuple[pd.Series | None, int | None, str | None]:
    """The column as float64 numbers, or None when it is text (mostly not numbers, and no ``rule``
    says it must be numbers).

    Also the position and description of the first cell that cannot be used: a non-number in a
    column of numbers (a typo there would otherwise turn the whole column into categories), an
    infinity, or a value beyond what float32 holds.
    """
    if is_text(column):
        numbers = pd.to_numeric(column, errors="coerce")
        parsed = numbers.notna().to_numpy()
        if not parsed.all():
            if rule is None and parsed.mean() < 0.5:
                return None, None, None
            bad = int(np.argmin(parsed))
            return None, bad, f"{column.iloc[bad]!r} is not a number ({rule or 'most of the column is numbers'})"
    else:
        numbers = column
    values = numbers.to_numpy(dtype=np.float64)
    unusable = ~np.isfinite(values) | (np.abs(values) > FLOAT32_MAX)
    if unusable.any():
        bad = int(np.argmax(unusable))
        cell = column.iloc[bad]
        shown = cell if isinstance(cell, str) else f"{float(cell):g}"
        if not np.isfinite(values[bad]):
            return None, bad, f"{shown!r} is not a finite number"
        return None, bad, f"{shown!r} is beyond what 32-bit floats hold (about 3.4e38); rescale the column"
    return pd.Series(values, index=column.index), None, None


def fit_columns(frame: pd.DataFrame) -> list[dict]:
    """A spec per column, from the training rows ``frame`` (numbers already converted)."""
    return [_fit_column(str(name), frame[name]) for name in frame.columns]


def _fit_column(name: str, column: pd.Series) -> dict:
    if pd.api.types.is_bool_dtype(column):  # pandas reads true/false columns as booleans
        return {"name": name, "type": BOOLEAN, "true": _spellings(column.astype(str), "true"),
                "false": _spellings(column.astype(str), "false")}
    if not is_text(column):
        return {"name": name, "type": NUMBER}
    lowered = set(column.str.lower().unique())
    for true, false in BOOLEAN_WORDS:
        if lowered <= {true, false}:
            return {"name": name, "type": BOOLEAN, "true": _spellings(column, true), "false": _spellings(column, false)}
    counts = column.value_counts()
    kept = counts[counts >= MIN_LEVEL_COUNT]
    # The most frequent first; ties in name order, so that the same rows always give the same slots.
    levels = sorted(kept.index, key=lambda level: (-kept[level], level))[:MAX_LEVELS]
    return {"name": name, "type": CATEGORY, "levels": [str(level) for level in levels]}


def _spellings(column: pd.Series, word: str) -> list[str]:
    """The ways ``word`` is written in training, plus its usual ones (Yes, YES, yes)."""
    seen = {value for value in column.unique() if value.lower() == word}
    return [word, *sorted((seen | {word.upper(), word.title()}) - {word})]


def width(spec: dict) -> int:
    """How many model inputs the column becomes."""
    return len(spec["levels"]) + 1 if spec["type"] == CATEGORY else 1


def encode(specs: list[dict], frame: pd.DataFrame, name: str = "input") -> np.ndarray:
    """Raw rows (a column per spec name) as float64 model inputs (N, sum of widths), not yet standardised."""
    missing = [spec["name"] for spec in specs if spec["name"] not in frame.columns]
    if missing:
        raise UserError(f"{name}: no column {missing[0]!r}; the model needs {', '.join(s['name'] for s in specs)}")
    parts = [_encode_column(spec, frame[spec["name"]], name) for spec in specs]
    return np.concatenate(parts, axis=1) if parts else np.zeros((len(frame), 0))


def _encode_column(spec: dict, column: pd.Series, name: str) -> np.ndarray:
    kind = spec["type"]
    if kind == CATEGORY:
        text = column.astype(str).str.strip()
        _refuse_missing(spec, column, text, name)
        codes = pd.Index(spec["levels"]).get_indexer(text)
        codes[codes < 0] = len(spec["levels"])  # unseen or rare: the "other" slot
        one_hot = np.zeros((len(column), len(spec["levels"]) + 1))
        one_hot[np.arange(len(column)), codes] = 1.0
        return one_hot
    if kind == BOOLEAN:
        return _booleans(spec, column, name)[:, None]
    if is_text(column):
        column = column.astype(str).str.strip()
    numbers, bad, problem = as_number_column(column, rule="the model was trained on numbers there")
    if bad is not None:
        raise UserError(f"{name}, row {bad + 1}, column {spec['name']!r}: {problem}")
    return numbers.to_numpy()[:, None]


def _booleans(spec: dict, column: pd.Series, name: str) -> np.ndarray:
    if pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column):
        values = column.to_numpy(dtype=np.float64)
        ok = np.isin(values, (0.0, 1.0))
    else:
        text = column.astype(str).str.strip()
        _refuse_missing(spec, column, text, name)
        lowered = text.str.lower()
        is_true, is_false = (lowered.isin([word.lower() for word in spec[key]]) for key in ("true", "false"))
        values = np.where(is_true, 1.0, 0.0)
        ok = (is_true | is_false).to_numpy()
    if not ok.all():
        bad = int(np.argmin(ok))
        raise UserError(f"{name}, row {bad + 1}, column {spec['name']!r}: {column.iloc[bad]!r} is neither "
                        f"{spec['true'][0]} nor {spec['false'][0]}")
    return values


def _refuse_missing(spec: dict, column: pd.Series, text: pd.Series, name: str) -> None:
    """Training refuses missing cells, so an answer for one would be a guess: refuse it here too."""
    missing = (column.isna() | text.str.lower().isin(MISSING)).to_numpy()
    if missing.any():
        bad = int(np.argmax(missing))
        raise UserError(f"{name}, row {bad + 1}, column {spec['name']!r}: no value; the model needs one in every "
                        "column")


def check_specs(specs, names) -> bool:
    """Whether saved specs are well formed (an edited model file is refused)."""
    kinds_ok = all(isinstance(spec.get("name"), str) and spec.get("type") in (NUMBER, BOOLEAN, CATEGORY)
                   for spec in specs)
    if not kinds_ok or (names is not None and [spec["name"] for spec in specs] != list(names)):
        return False
    words = [spec.get(key) for spec in specs if spec["type"] == BOOLEAN for key in ("true", "false")]
    levels = [spec.get("levels") for spec in specs if spec["type"] == CATEGORY]
    return all(isinstance(v, list) and all(isinstance(s, str) for s in v) for v in [*words, *levels])


def delimiter_word(text: str) -> str:
    """--delimiter's value: one character, or the words a shell makes easier to type."""
    character = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "space": " ", "pipe": "|"}.get(text, text)
    if len(character) != 1 or character in '"\r\n':
        raise argparse.ArgumentTypeError(f"expected one character (not a quote or a line break) or tab, got {text!r}")
    return character
