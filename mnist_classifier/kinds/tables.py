"""Tables: ``--dataset csv:PATH`` (``data/csv_data.py`` reads it) and the built-in ``diabetes``.

The record is ``{"kind": "table", "feature_names", "columns", "x_mean", "x_std", "y_mean", "y_std"}``.
Each raw column becomes numbers as its spec in ``columns`` says (``data/tables.py``: numbers,
yes/no, one-hot categories with an "other" slot); those inputs are then standardised with the
training rows' statistics (``x_mean``, ``x_std``, one per input). Regression targets are
standardised too, so one learning rate suits any unit, and predictions are turned back into the
target's units. Files from before text columns have no ``columns``: every column a number.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..data import tables
from ..errors import UserError, first_line
from ..options import option
from .base import REGRESSION, Kind, as_float_tensor

# Defaults for tables with the MLP: the seed's size rule builds 8-7-6-5-4-1 for 8 columns, far too
# small. Chosen on validation data by benchmarks/search_tables.py (docs/tables.md). None: sized from
# the number of training rows by ``table_schedule``.
TABLE_DEFAULTS = {"hidden_sizes": [256, 256], "use_dropout": True, "dropout_p": 0.1, "weight_decay": 1e-4,
                  "batch_size": None, "n_epochs": None}
MLP_OPTIONS = ("hidden_sizes", "use_dropout", "dropout_p")  # for the MLP (and auto's) only
# A family's own table defaults, over TABLE_DEFAULTS. The linear model's loss is convex, and at the
# MLP's 1e-3 its 2,000 steps end short of the minimum (docs/results.md#where-the-defaults-come-from).
TABLE_FAMILY_DEFAULTS = {"linear": {"lr": 3e-2}}
TABLE_STEPS = 2000  # optimizer steps a table run aims at, whatever its size
TABLE_BATCH = (16, 256)  # the smallest and largest table batch size
TABLE_EPOCHS = (20, 500)
# How a row becomes model input, in words for consumers in other languages (an export).
TABLE_PREPARATION = ("each column in order (preprocessing.columns) becomes inputs: a number itself; yes/no 1 or 0; "
                     "text one input per level (1 for the row's level, else 0) then one for any other level; a gap "
                     "(an empty cell; in a number column also pandas' NA words; in any column the column's "
                     "na_values) is a number's or yes/no's fill, and a text column's other level; a column whose "
                     "gaps is above 0 has one more input: for a number or yes/no 1 after a gap, else 0, and for text "
                     "a slot for the gap itself, not the other level; then each input: (value - x_mean) / x_std")


# How a CSV file is read, for mnist-train's --dataset csv:PATH and mnist-predict's files of rows alike.
CSV_READING = {
    "decimal": {"help": "the decimal mark, . or , (default: sniffed; a comma where a file not split by commas "
                        "writes 0,5)", "choices": (".", ",")},
    "encoding": {"help": "the file's encoding, e.g. cp1252, latin-1, utf-16 (default: detected by "
                         "charset-normalizer)"},
    "delimiter": {"help": "the character between cells, or tab (default: sniffed from the file: comma, semicolon, "
                          "tab or |)", "cli": {"type": tables.delimiter_word}},
}


def reading_option(name: str, where: str, **spec):
    """The ``option`` field of CSV_READING's ``name``, its help after ``where`` ("for csv:PATH: ")."""
    words = dict(CSV_READING[name])
    return option(None, where + words.pop("help"), **words, **spec)


def table_schedule(n_train: int, batch: int | None = None) -> tuple[int, int]:
    """Batch size (unless given) and epochs for ``n_train`` table rows: about 32 batches an epoch (a
    power of two between 16 and 256, never more than the rows), and epochs enough for about
    ``TABLE_STEPS`` steps (20 to 500)."""
    low, high = TABLE_BATCH
    if batch is None:
        batch = int(min(max(2 ** round(math.log2(max(n_train, 1) / 32)), low), high, max(n_train, 1)))
    steps_per_epoch = max(n_train // max(batch, 1), 1)  # a batch size below 1 is refused after this
    epochs = int(min(max(round(TABLE_STEPS / steps_per_epoch), TABLE_EPOCHS[0]), TABLE_EPOCHS[1]))
    return batch, epochs


class Table(Kind):
    """Table rows: column specs (``data/tables.py``), then standardisation with the training rows'
    statistics; regression targets standardised too."""

    kind, name = "table", "table rows"
    title = "tables"
    prefix, builtins = "csv", ("diabetes",)
    default_model = "auto"
    auto_families = ("linear", "mlp")  # trained one after the other; the lower validation loss is kept
    sized_from_rows = True

    @classmethod
    def load(cls, dataset: str, data_dir: str, **options):
        if dataset in cls.builtins:
            from ..data.datasets import LOADERS  # scikit-learn's bundled sets: read only when training

            return LOADERS[dataset](data_dir=data_dir)
        from ..data.csv_data import load_csv  # the CSV reader: only when training

        return load_csv(Path(dataset.partition(":")[2]), **options)

    @classmethod
    def schedule(cls, rows: int, batch_size: int | None) -> tuple[int, int]:
        return table_schedule(rows, batch_size)

    @classmethod
    def reader_options(cls, config) -> dict:
        return {"task": config.task}  # None: the reader infers it from the target

    @classmethod
    def defaults(cls, model: str) -> dict:
        """The tables' training settings for every family; their MLP sizes for the MLP (auto's too)."""
        defaults = {k: v for k, v in TABLE_DEFAULTS.items() if k not in MLP_OPTIONS or model in ("mlp", "auto")}
        return defaults | TABLE_FAMILY_DEFAULTS.get(model, {})

    @classmethod
    def fit(cls, x: pd.DataFrame | torch.Tensor, y: torch.Tensor | None = None,
            feature_names: list[str] | None = None, na_values=(), decimal: str = ".") -> Table:
        """How the training rows ``x`` (and regression targets ``y``) become model input: column specs
        (gap fills included) and standardisation statistics, from these rows only. ``na_values``:
        the words that also mean a gap (``--na_values``); ``decimal``: the training file's decimal mark."""
        if isinstance(x, torch.Tensor):
            x = pd.DataFrame(x.double().numpy(), columns=feature_names or [f"x{i}" for i in range(x.size(1))])
        specs = tables.fit_columns(x, na_values)
        # In float64: squares of values near float32's limit (3.4e38) would overflow in float32.
        encoded = torch.from_numpy(tables.encode(specs, x))
        std = encoded.std(dim=0, correction=1 if len(encoded) > 1 else 0)
        # A column that never varied in training carries no scale: dividing by its ~0 spread would turn
        # any other value at test time into a huge one.
        std = torch.where(std > 1e-8 * encoded.abs().amax(dim=0).clamp_min(1.0), std, torch.ones_like(std))
        mean = encoded.mean(dim=0)
        one_hot = torch.tensor([spec["type"] == tables.CATEGORY for spec in specs for _ in range(tables.width(spec))])
        mean, std = torch.where(one_hot, 0.0, mean), torch.where(one_hot, 1.0, std)  # slots stay 0 or 1
        values = {"kind": cls.kind, "feature_names": [spec["name"] for spec in specs], "columns": specs,
                  "x_mean": mean.tolist(), "x_std": std.tolist(), "y_mean": 0.0, "y_std": 1.0}
        if decimal != ".":  # 85.591 in a file of whole numbers is then 85,591, as the training file wrote it
            values["decimal"] = decimal
        if y is not None:
            y = y.double()
            values["y_mean"] = y.mean().item()
            values["y_std"] = max(y.std(correction=1 if len(y) > 1 else 0).item(), 1e-8)
        return cls(values)

    @classmethod
    def fit_dataset(cls, dataset, rows: torch.Tensor | None = None) -> Table:
        x, y = dataset.train
        if rows is not None:
            x, y = x.iloc[rows.numpy()] if hasattr(x, "iloc") else x[rows], y[rows]
        return cls.fit(x, y if dataset.task == REGRESSION else None, dataset.feature_names, dataset.na_values,
                       dataset.decimal)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (len(self.values["x_mean"]),)

    @property
    def columns(self) -> list[dict]:
        """The column specs; files from before text columns: a number per input."""
        if "columns" in self.values:
            return self.values["columns"]
        names = self.values.get("feature_names") or [f"x{i}" for i in range(len(self.values["x_mean"]))]
        return [{"name": str(name), "type": tables.NUMBER} for name in names]

    def check(self) -> bool:
        v = self.values
        numbers = [*v["x_mean"], *v["x_std"], v["y_mean"], v["y_std"]]
        return (len(v["x_mean"]) == len(v["x_std"]) >= 1
                and all(isinstance(n, (int, float)) and math.isfinite(n) for n in numbers)
                and min(v["x_std"]) > 0 and v["y_std"] > 0
                and tables.check_specs(self.columns, v.get("feature_names") if "columns" in v else None)
                and sum(map(tables.width, self.columns)) == len(v["x_mean"]))

    def describe(self, details: bool = False) -> str:
        """The columns in a few words: "8 columns: 5 numbers, 1 yes/no, 2 text (city, job)". With
        ``details``, what was decided: each text column's levels, and how gaps are filled."""
        specs = self.columns
        kinds = {kind: [spec for spec in specs if spec["type"] == kind]
                 for kind in (tables.NUMBER, tables.BOOLEAN, tables.CATEGORY)}
        numbers = len(kinds[tables.NUMBER])
        parts = [f"{numbers} number{'s' if numbers != 1 else ''}"] if numbers else []
        if kinds[tables.BOOLEAN]:
            parts.append(f"{len(kinds[tables.BOOLEAN])} yes/no")
        if kinds[tables.CATEGORY]:
            text = kinds[tables.CATEGORY]
            named = [_levels_words(spec) if details else spec["name"] for spec in text[:4]]
            parts.append(f"{len(text)} text ({(', ' if not details else '; ').join(named)}"
                         f"{', ...' if len(text) > 4 else ''})")
        described = f"{len(specs)} columns: {', '.join(parts)}"
        gapped = [spec for spec in specs if tables.had_gaps(spec)]
        if details and gapped:
            described += "; gaps filled from the training rows: " + ", ".join(map(_gap_words, gapped[:6])) + (
                ", ..." if len(gapped) > 6 else "")
        return described

    def first_line(self, dataset, config) -> str:
        return (f"{dataset.found or dataset.name}: {self.describe(details=True)} -> {dataset.input_size} model "
                f"inputs; batch size {config.batch_size}, {config.n_epochs} epochs")

    def apply(self, x, name: str = "input") -> torch.Tensor:
        """Table rows, encoded by the column specs, then standardised: never scaled as pixels."""
        encoded = torch.from_numpy(tables.encode(self.columns, table_frame(self.columns, x, name), name))
        mean, std = (torch.tensor(self.values[key], dtype=torch.float64) for key in ("x_mean", "x_std"))
        return ((encoded - mean) / std).float()

    def gaps_note(self, x, name: str = "input") -> str | None:
        """A line on the gaps in rows ``x`` where the training rows had none (filled by the same rule,
        but worth saying); None when there are none."""
        gaps = tables.unexpected_gaps(self.columns, table_frame(self.columns, x, name), name)
        return f"{name}: {tables.describe_gaps(self.columns, gaps)}" if gaps else None

    def to_target(self, y: torch.Tensor) -> torch.Tensor:
        if torch.is_floating_point(y):
            return ((y.double() - self.values["y_mean"]) / self.values["y_std"]).float()
        return y

    def from_output(self, output: torch.Tensor) -> torch.Tensor:
        return (output.double() * self.values["y_std"] + self.values["y_mean"]).float()

    @property
    def target_scale(self) -> float:
        return self.values["y_std"]

    def preparation(self) -> str:
        return TABLE_PREPARATION


def table_frame(specs: list[dict], x, name: str = "input") -> pd.DataFrame:
    """Rows in any accepted form as a DataFrame with the model's column names."""
    names = [spec["name"] for spec in specs]
    if isinstance(x, pd.Series):  # one row, its values named: by name, not by position
        x = x.to_dict()
    if isinstance(x, pd.DataFrame):
        if x.columns.duplicated().any():
            raise UserError(f"{name}: the column {x.columns[x.columns.duplicated()][0]!r} appears more than once")
        return x
    if isinstance(x, dict):
        x = [x]
    if isinstance(x, (list, tuple)) and x and all(isinstance(row, dict) for row in x):
        return pd.DataFrame(list(x))
    if isinstance(x, torch.Tensor):
        x, _ = as_float_tensor(x, name)
        x = x.double().numpy()
    try:
        array = np.asarray(x)  # not made float: a category's level 3 must stay "3", not become "3.0"
    except (ValueError, TypeError) as e:  # ragged nested lists, or cells that are neither numbers nor text
        raise UserError(f"{name}: not a table of values, one row or rows of {len(names)} "
                        f"({first_line(e)[:120]})") from None
    if array.ndim == 1 and array.shape == (len(names),):
        array = array[None]
    if array.ndim != 2 or array.shape[1] != len(names):
        raise UserError(f"{name}: the model takes rows of {len(names)} values ({', '.join(names)}); got an array "
                        f"of shape {array.shape}")
    if array.dtype.kind not in "uifbOU":
        raise UserError(f"{name}: expected numbers or text, got an array of {array.dtype}")
    return pd.DataFrame({column: array[:, i] for i, column in enumerate(names)})


def _levels_words(spec: dict) -> str:
    """'education: 4 levels (none, school, college, degree)'."""
    levels = spec["levels"]
    shown = ", ".join(levels[:4]) + (", ..." if len(levels) > 4 else "")
    return f"{spec['name']}: {len(levels)} level{'s' if len(levels) != 1 else ''} ({shown})"


def _gap_words(spec: dict) -> str:
    """'income in 12 rows (median 45.3, and a was-missing input)'."""
    rule = {tables.NUMBER: f"median {spec.get('fill', 0.0):.4g}, and a was-missing input",
            tables.BOOLEAN: "a third state", tables.CATEGORY: "a missing slot"}[spec["type"]]
    return f"{spec['name']} in {spec['gaps']} rows ({rule})"
