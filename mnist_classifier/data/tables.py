"""Table columns as model input: what kind each column is, and how its values become numbers.

Fitted on the training rows only, the result is a list of plain column specs that the
preprocessing record keeps (``preprocessing.py``):

- ``{"name", "type": "number", "fill", "gaps"}``: the value itself (numbers stored as text count);
- ``{"name", "type": "boolean", "true": [...], "false": [...], "fill", "gaps"}``: yes/no,
  true/false, y/n, t/f as 1 and 0;
- ``{"name", "type": "category", "levels": [...], "gaps"}``: one slot per level seen at least
  ``MIN_LEVEL_COUNT`` times in training (the ``MAX_LEVELS`` most frequent), plus one "other"
  slot for rarer levels and for levels never seen in training, so that a new city at predict
  time is an answer, not an error.

Gaps (missing cells) are part of the data, as scikit-learn's HistGradientBoosting takes them:
``gaps`` counts the training rows that had one. A number's or yes/no's gap becomes ``fill`` (the
training median, or the share of yes), plus a 0/1 "was missing" input when training had gaps
there; a text column's gaps get a "missing" slot of their own. A gap where training had none
follows the same rule without the extra input (the "other" slot for text) and is reported
(``unexpected_gaps``). Which cells are gaps: in a number column, empty cells and pandas'
NA words (``NUMBER_NA``); in a text column only empty cells, so that ``none`` or ``NA`` stay
levels; in both, the words a user adds (``na_values``). Specs from before gaps have no ``gaps``
key: a gap there is refused, as those models were trained without any.

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
# The words pandas' read_csv takes for missing (its documented default na_values), spelled as pandas
# has them: in a number column these are gaps; in a text column they are words like any other.
NUMBER_NA = frozenset(["", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
                       "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"])
BOOLEAN_WORDS = [("true", "false"), ("yes", "no"), ("t", "f"), ("y", "n")]


def is_text(column: pd.Series) -> bool:
    return not (pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column))


def cell_text(column: pd.Series) -> pd.Series:
    """Each cell as stripped text; a missing cell (None, NaN) as the empty string."""
    return column.astype(object).where(column.notna(), "").astype(str).str.strip()


def shown_cell(value, limit: int = 60) -> str:
    """A cell quoted for a one-line message, cut to ``limit`` characters: a 200 MB cell stays a line."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(str(value)):,} characters)"


def category_text(column: pd.Series) -> pd.Series:
    """A text column's cells as the levels were written: numbers given for it (a 2-D array of raw
    values) as their shortest spelling, 7.0 as "7", so that the level '7' is found."""
    if not pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        return cell_text(column)
    values = column.to_numpy(dtype=np.float64)
    whole = np.isfinite(values) & (values == np.round(values)) & (np.abs(values) < 2**53)
    text = [str(int(v)) if w else ("" if np.isnan(v) else repr(float(v))) for v, w in zip(values, whole, strict=True)]
    return pd.Series(text, index=column.index)


def text_gaps(column: pd.Series, na_values=()) -> np.ndarray:
    """The gaps of a text column: missing or empty cells, and the words in ``na_values``."""
    text = cell_text(column)
    return ((text == "") | text.isin(list(na_values))).to_numpy()


def number_cells(text: pd.Series, decimal: str = ".") -> pd.Series:
    """Text cells as float64 numbers, NaN where a cell is not one."""
    if decimal != ".":  # 2.817,20: the points group thousands
        text = text.str.replace(".", "", regex=False).str.replace(decimal, ".", regex=False)
    return pd.to_numeric(text, errors="coerce")


def as_number_column(column: pd.Series, rule: str | None = None, na_values=(), decimal: str = "."
                     ) -> tuple[pd.Series | None, int | None, str | None]:
    """The column as float64 numbers, NaN where a cell is a gap (``NUMBER_NA``, ``na_values``); or
    None when it is text (mostly not numbers, and no ``rule`` says it must be numbers).

    Also the position and description of the first cell that cannot be used: a non-number in a
    column of numbers (a typo there would otherwise turn the whole column into categories), an
    infinity, or a value beyond what float32 holds.
    """
    if is_text(column):
        text = cell_text(column)
        gap = (text.isin(NUMBER_NA) | text.isin(list(na_values))).to_numpy()
        numbers = number_cells(text.where(~gap), decimal)
        parsed = numbers.notna().to_numpy()
        if rule is None and not parsed.any():
            return None, None, None
        unusable = ~(parsed | gap)
        if unusable.any():
            if rule is None and parsed[~gap].mean() < 0.5:
                return None, None, None
            bad = int(np.argmax(unusable))
            why = rule or "most of the column is numbers"
            return None, bad, f"{shown_cell(column.iloc[bad])} is not a number ({why})"
    else:
        numbers = column
    values = numbers.to_numpy(dtype=np.float64)
    unusable = np.isinf(values) | (np.abs(values) > FLOAT32_MAX)
    if unusable.any():
        bad = int(np.argmax(unusable))
        cell = column.iloc[bad]
        shown = cell if isinstance(cell, str) else f"{float(cell):g}"
        if np.isinf(values[bad]):
            return None, bad, f"{shown!r} is not a finite number"
        return None, bad, f"{shown!r} is beyond what 32-bit floats hold (about 3.4e38); rescale the column"
    return pd.Series(values, index=column.index), None, None


def fit_columns(frame: pd.DataFrame, na_values=()) -> list[dict]:
    """A spec per column, from the training rows ``frame`` (numbers already converted, gaps NaN)."""
    extra = {"na_values": list(na_values)} if na_values else {}
    return [{**_fit_column(str(name), frame[name], na_values), **extra} for name in frame.columns]


def _fit_column(name: str, column: pd.Series, na_values) -> dict:
    if pd.api.types.is_bool_dtype(column):  # pandas reads true/false columns as booleans
        return {"name": name, "type": BOOLEAN, "true": _spellings(column.astype(str), "true"),
                "false": _spellings(column.astype(str), "false"), "fill": float(column.mean()), "gaps": 0}
    if not is_text(column):
        known = column.dropna()
        fill = float(known.median()) if len(known) else 0.0
        return {"name": name, "type": NUMBER, "fill": fill, "gaps": int(column.isna().sum())}
    gap = text_gaps(column, na_values)
    known = cell_text(column)[~gap]
    lowered = set(known.str.lower().unique())
    for true, false in BOOLEAN_WORDS:
        if lowered and lowered <= {true, false}:
            fill = float((known.str.lower() == true).mean())
            return {"name": name, "type": BOOLEAN, "true": _spellings(known, true), "false": _spellings(known, false),
                    "fill": fill, "gaps": int(gap.sum())}
    counts = known.value_counts()
    kept = counts[counts >= MIN_LEVEL_COUNT]
    # The most frequent first; ties in name order, so that the same rows always give the same slots.
    levels = sorted(kept.index, key=lambda level: (-kept[level], level))[:MAX_LEVELS]
    return {"name": name, "type": CATEGORY, "levels": [str(level) for level in levels], "gaps": int(gap.sum())}


def _spellings(column: pd.Series, word: str) -> list[str]:
    """The ways ``word`` is written in training, plus its usual ones (Yes, YES, yes)."""
    seen = {value for value in column.unique() if value.lower() == word}
    return [word, *sorted((seen | {word.upper(), word.title()}) - {word})]


def had_gaps(spec: dict) -> bool:
    """Whether training had gaps in this column: then it has its "was missing" input or slot."""
    return spec.get("gaps", 0) > 0


def width(spec: dict) -> int:
    """How many model inputs the column becomes."""
    if spec["type"] == CATEGORY:
        return len(spec["levels"]) + 1 + had_gaps(spec)
    return 1 + had_gaps(spec)


def encode(specs: list[dict], frame: pd.DataFrame, name: str = "input") -> np.ndarray:
    """Raw rows (a column per spec name) as float64 model inputs (N, sum of widths), not yet standardised."""
    missing = [spec["name"] for spec in specs if spec["name"] not in frame.columns]
    if missing:
        raise UserError(f"{name}: no column {missing[0]!r}; the model needs {', '.join(s['name'] for s in specs)}")
    parts = [_encode_column(spec, frame[spec["name"]], name) for spec in specs]
    return np.concatenate(parts, axis=1) if parts else np.zeros((len(frame), 0))


def gaps_of(spec: dict, column: pd.Series, name: str = "input") -> np.ndarray:
    """Which of the column's cells are gaps, by the spec's kind."""
    if spec["type"] != NUMBER:
        return text_gaps(column, spec.get("na_values", ()))
    numbers = _numbers(spec, column, name)
    return np.isnan(numbers)


def _numbers(spec: dict, column: pd.Series, name: str) -> np.ndarray:
    numbers, bad, problem = as_number_column(column, rule="the model was trained on numbers there",
                                             na_values=spec.get("na_values", ()))
    if bad is not None:
        raise UserError(f"{name}, row {bad + 1}, column {spec['name']!r}: {problem}")
    return numbers.to_numpy()


def _encode_column(spec: dict, column: pd.Series, name: str) -> np.ndarray:
    kind = spec["type"]
    if kind == CATEGORY:
        gap = text_gaps(column, spec.get("na_values", ()))
        _refuse_gaps(spec, gap, name)
        codes = pd.Index(spec["levels"]).get_indexer(category_text(column))
        codes[codes < 0] = len(spec["levels"])  # unseen or rare: the "other" slot
        if had_gaps(spec):
            codes[gap] = len(spec["levels"]) + 1  # the "missing" slot
        one_hot = np.zeros((len(column), width(spec)))
        one_hot[np.arange(len(column)), codes] = 1.0
        return one_hot
    if kind == BOOLEAN:
        values, gap = _booleans(spec, column, name)
    else:
        values = _numbers(spec, column, name)
        gap = np.isnan(values)
    _refuse_gaps(spec, gap, name)
    values = np.where(gap, spec.get("fill", 0.0), values)
    return np.column_stack([values, gap.astype(np.float64)]) if had_gaps(spec) else values[:, None]


def _booleans(spec: dict, column: pd.Series, name: str) -> tuple[np.ndarray, np.ndarray]:
    if pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column):
        values = column.to_numpy(dtype=np.float64)
        gap = np.isnan(values)
        ok = np.isin(values, (0.0, 1.0)) | gap
    else:
        gap = text_gaps(column, spec.get("na_values", ()))
        lowered = cell_text(column).str.lower()
        is_true, is_false = (lowered.isin([word.lower() for word in spec[key]]) for key in ("true", "false"))
        values = np.where(is_true, 1.0, 0.0)
        ok = (is_true | is_false).to_numpy() | gap
    if not ok.all():
        bad = int(np.argmin(ok))
        raise UserError(f"{name}, row {bad + 1}, column {spec['name']!r}: {shown_cell(column.iloc[bad])} is neither "
                        f"{spec['true'][0]} nor {spec['false'][0]}")
    return values, gap


def _refuse_gaps(spec: dict, gap: np.ndarray, name: str) -> None:
    """A model file from before gaps were handled knows no rule for them: refuse the cell."""
    if "gaps" not in spec and gap.any():
        bad = int(np.argmax(gap))
        raise UserError(f"{name}, row {bad + 1}, column {spec['name']!r}: no value; this model file (from before "
                        "gaps were handled) needs one in every column")


def unexpected_gaps(specs: list[dict], frame: pd.DataFrame, name: str = "input") -> dict[str, int]:
    """Gaps in columns that had none in training, by column: filled by the same rule, and worth saying."""
    found = {}
    for spec in specs:
        if "gaps" in spec and not had_gaps(spec) and spec["name"] in frame.columns:
            count = int(gaps_of(spec, frame[spec["name"]], name).sum())
            if count:
                found[spec["name"]] = count
    return found


def describe_gaps(specs: list[dict], gaps: dict[str, int]) -> str:
    """'2 gaps where training had none (income: 2, filled with 45.3)'."""
    fills = {spec["name"]: spec for spec in specs}
    parts = [f"{column}: {count}, " + (f"filled with {fills[column]['fill']:g}" if "fill" in fills[column]
                                       else 'read as "other"') for column, count in gaps.items()]
    return f"{sum(gaps.values())} gaps where training had none ({'; '.join(parts)})"


def check_specs(specs, names) -> bool:
    """Whether saved specs are well formed (an edited model file is refused)."""
    kinds_ok = all(isinstance(spec.get("name"), str) and spec.get("type") in (NUMBER, BOOLEAN, CATEGORY)
                   for spec in specs)
    if not kinds_ok or (names is not None and [spec["name"] for spec in specs] != list(names)):
        return False
    words = [spec.get(key) for spec in specs if spec["type"] == BOOLEAN for key in ("true", "false")]
    levels = [spec.get("levels") for spec in specs if spec["type"] == CATEGORY]
    na_values = [spec["na_values"] for spec in specs if "na_values" in spec]
    gaps_ok = all(isinstance(spec.get("gaps", 0), int) and not isinstance(spec.get("gaps", 0), bool)
                  and spec.get("gaps", 0) >= 0 and _finite(spec.get("fill", 0.0)) for spec in specs)
    strings_ok = all(isinstance(v, list) and all(isinstance(s, str) for s in v) for v in [*words, *levels, *na_values])
    return gaps_ok and strings_ok


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and bool(np.isfinite(value))


def delimiter_word(text: str) -> str:
    """--delimiter's value: one character, or the words a shell makes easier to type."""
    character = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "space": " ", "pipe": "|"}.get(text, text)
    if len(character) != 1 or character in '"\r\n':
        raise argparse.ArgumentTypeError(f"expected one character (not a quote or a line break) or tab, got {text!r}")
    return character
