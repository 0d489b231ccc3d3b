"""The preprocessing record: what raw input goes through before the model sees it.

One record, fitted once on the training rows, is saved in the model file as plain values and
applied by every consumer (training, evaluation, ``Predictor``, the notebook) through the
functions here, so that no two places prepare input in two ways:

- images: ``{"kind": "image", "shape": [C, H, W], "style": "digit" | "fill"}``. Arrays are
  pixels in [0, 1] (uint8 arrays are divided by 255); people's own pictures are prepared the
  way the data set was made: ``digit`` fits the strokes into 20x20 and centres them by mass
  (MNIST), ``fill`` lets the object fill the frame (Fashion-MNIST).
- tables: ``{"kind": "table", "feature_names", "columns", "x_mean", "x_std", "y_mean", "y_std"}``.
  Each raw column becomes numbers as its spec in ``columns`` says (``tables.py``: numbers,
  yes/no, one-hot categories with an "other" slot); those inputs are then standardised with the
  training rows' statistics (``x_mean``, ``x_std``, one per input). Regression targets are
  standardised too, so one learning rate suits any unit, and predictions are turned back into
  the target's units. Files from before text columns have no ``columns``: every column a number.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
from PIL import Image

from ..errors import UserError, first_line
from . import tables
from .images import fill_frame, mnist_like

CLASSIFICATION, REGRESSION = "classification", "regression"
IMAGE, TABLE = "image", "table"
DIGIT, FILL = "digit", "fill"
IMAGE_STYLES = {DIGIT: mnist_like, FILL: fill_frame}


def image_record(shape: tuple[int, ...], style: str = DIGIT) -> dict:
    return {"kind": IMAGE, "shape": list(shape), "style": style}


def fit_table(x: pd.DataFrame | torch.Tensor, y: torch.Tensor | None = None,
              feature_names: list[str] | None = None) -> dict:
    """How the training rows ``x`` (and regression targets ``y``) become model input: column specs
    and standardisation statistics, from these rows only."""
    if isinstance(x, torch.Tensor):
        x = pd.DataFrame(x.double().numpy(), columns=feature_names or [f"x{i}" for i in range(x.size(1))])
    specs = tables.fit_columns(x)
    # In float64: squares of values near float32's limit (3.4e38) would overflow in float32.
    encoded = torch.from_numpy(tables.encode(specs, x))
    std = encoded.std(dim=0, correction=1 if len(encoded) > 1 else 0)
    # A column that never varied in training carries no scale: dividing by its ~0 spread would turn
    # any other value at test time into a huge one.
    std = torch.where(std > 1e-8 * encoded.abs().amax(dim=0).clamp_min(1.0), std, torch.ones_like(std))
    mean = encoded.mean(dim=0)
    one_hot = torch.tensor([spec["type"] == tables.CATEGORY for spec in specs for _ in range(tables.width(spec))])
    mean, std = torch.where(one_hot, 0.0, mean), torch.where(one_hot, 1.0, std)  # slots stay 0 or 1
    record = {"kind": TABLE, "feature_names": [spec["name"] for spec in specs], "columns": specs,
              "x_mean": mean.tolist(), "x_std": std.tolist(), "y_mean": 0.0, "y_std": 1.0}
    if y is not None:
        y = y.double()
        record["y_mean"] = y.mean().item()
        record["y_std"] = max(y.std(correction=1 if len(y) > 1 else 0).item(), 1e-8)
    return record


def input_shape(record: dict) -> tuple[int, ...]:
    return tuple(record["shape"]) if record["kind"] == IMAGE else (len(record["x_mean"]),)


def table_columns(record: dict) -> list[dict]:
    """The record's column specs; files from before text columns: a number per input."""
    if "columns" in record:
        return record["columns"]
    names = record.get("feature_names") or [f"x{i}" for i in range(len(record["x_mean"]))]
    return [{"name": str(name), "type": tables.NUMBER} for name in names]


def to_model_input(record: dict, x, name: str = "input") -> torch.Tensor:
    """Raw input as a float32 batch (N, *shape): images as tensors or arrays of one or many; table
    rows as a pandas DataFrame, a dict per row, or an array of raw values (one row or many)."""
    if record["kind"] == TABLE:
        return _table_input(record, x, name)
    batch, is_uint8 = _as_float_tensor(x, name)
    batch = _as_batch(batch, input_shape(record), name)
    if not torch.isfinite(batch).all():
        raise UserError(f"{name}: the input holds NaN or infinite values")
    if is_uint8:
        return batch / 255.0
    low, high = batch.min().item() if batch.numel() else 0.0, batch.max().item() if batch.numel() else 0.0
    if low < 0 or high > 1:
        raise UserError(f"{name}: pixel values must lie in [0, 1], found {low:g} to {high:g} (divide 0..255 "
                        "pixels by 255, or pass a uint8 array)")
    return batch


def _table_input(record: dict, x, name: str) -> torch.Tensor:
    """Table rows, encoded by the record's column specs, then standardised: never scaled as pixels."""
    specs = table_columns(record)
    encoded = torch.from_numpy(tables.encode(specs, table_frame(specs, x, name), name))
    mean, std = (torch.tensor(record[key], dtype=torch.float64) for key in ("x_mean", "x_std"))
    return ((encoded - mean) / std).float()


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
        x, _ = _as_float_tensor(x, name)
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


def _as_float_tensor(x, name: str) -> tuple[torch.Tensor, bool]:
    if isinstance(x, torch.Tensor):
        if x.dtype == torch.bool or x.is_complex():
            raise UserError(f"{name}: expected real numbers, got a tensor of {x.dtype}")
        if x.layout != torch.strided or x.is_meta:
            raise UserError(f"{name}: expected a dense tensor with values, got a {x.layout} tensor on {x.device}")
        return x.detach().cpu().float(), x.dtype == torch.uint8
    try:
        array = np.asarray(x)
    except ValueError as e:  # ragged nested lists
        raise UserError(f"{name}: not a rectangular array of numbers ({e})") from None
    if array.dtype.kind not in "uif":
        raise UserError(f"{name}: expected an array of numbers, got one of {array.dtype}")
    return torch.from_numpy(array.astype(np.float32)), array.dtype == np.uint8


def _as_batch(batch: torch.Tensor, shape: tuple[int, ...], name: str) -> torch.Tensor:
    size = math.prod(shape)
    # One input: its own shape, flattened, or (for one channel) without the channel axis.
    singles = {shape, (size,)} | ({shape[1:]} if len(shape) == 3 and shape[0] == 1 else set())
    if tuple(batch.shape) in singles:
        return batch.reshape(1, *shape)
    if batch.dim() >= 2 and tuple(batch.shape[1:]) in singles:
        return batch.reshape(len(batch), *shape)
    raise UserError(f"{name}: the model takes inputs of shape {shape} ({size} values), one or a batch of them; "
                    f"got an array of shape {tuple(batch.shape)}")


def to_model_target(record: dict, y: torch.Tensor) -> torch.Tensor:
    """Regression targets in standardised units; class indices unchanged."""
    if record["kind"] == TABLE and torch.is_floating_point(y):
        return ((y.double() - record["y_mean"]) / record["y_std"]).float()
    return y


def target_scale(record: dict) -> float:
    """How many target units one unit of a regression model's output is (1 for classes)."""
    return record["y_std"] if record["kind"] == TABLE else 1.0


def from_model_output(record: dict, output: torch.Tensor) -> torch.Tensor:
    """A regression model's output back in the target's units."""
    if record["kind"] == TABLE:
        return (output.double() * record["y_std"] + record["y_mean"]).float()
    return output


def prepare_image(record: dict, image: Image.Image, name: str = "image") -> np.ndarray:
    """A person's picture as this record's model input: float32 (C, H, W) in [0, 1]."""
    if record["kind"] != IMAGE:
        raise UserError(f"{name}: this model takes table rows ({describe_columns(record)}), not images")
    channels, height, width = record["shape"]
    if channels != 1 or height != width:
        raise UserError(f"{name}: pictures can be prepared for square grayscale models only; this one takes "
                        f"{tuple(record['shape'])} arrays")
    return IMAGE_STYLES[record["style"]](image, side=height, name=name)[None]


def legacy_record(metadata: dict) -> dict:
    """The record of a model file from release 1, which saved statistics in its dataset metadata."""
    shape = list(metadata["input_shape"])
    if metadata.get("x_mean") is None:
        # Release 1 prepared every picture the MNIST-digit way: its files keep answering the same.
        return image_record((1, *shape) if len(shape) == 2 else shape, DIGIT)
    return {"kind": TABLE, "feature_names": metadata.get("feature_names"), "x_mean": metadata["x_mean"],
            "x_std": metadata["x_std"], "y_mean": metadata.get("y_mean", 0.0), "y_std": metadata.get("y_std", 1.0)}


def check_record(record, where: str) -> dict:
    """Refuse a record whose parts do not fit together (an edited or damaged model file)."""
    try:
        if record["kind"] == IMAGE:
            shape = record["shape"]
            ok = (len(shape) == 3 and all(isinstance(v, int) and v >= 1 for v in shape)
                  and record["style"] in IMAGE_STYLES)
        else:
            values = [*record["x_mean"], *record["x_std"], record["y_mean"], record["y_std"]]
            specs = table_columns(record)
            ok = (record["kind"] == TABLE and len(record["x_mean"]) == len(record["x_std"]) >= 1
                  and all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)
                  and min(record["x_std"]) > 0 and record["y_std"] > 0
                  and tables.check_specs(specs, record.get("feature_names") if "columns" in record else None)
                  and sum(map(tables.width, specs)) == len(record["x_mean"]))
    except (KeyError, TypeError, ValueError):
        ok = False
    if not ok:
        raise UserError(f"{where}: its preprocessing record is damaged or edited")
    return record


def describe_columns(record: dict) -> str:
    """A table model's columns in a few words: "8 columns: 5 numbers, 1 yes/no, 2 text (city, job)"."""
    specs = table_columns(record)
    kinds = {kind: [s["name"] for s in specs if s["type"] == kind]
             for kind in (tables.NUMBER, tables.BOOLEAN, tables.CATEGORY)}
    parts = [f"{len(kinds[tables.NUMBER])} numbers"] if kinds[tables.NUMBER] else []
    if kinds[tables.BOOLEAN]:
        parts.append(f"{len(kinds[tables.BOOLEAN])} yes/no")
    if kinds[tables.CATEGORY]:
        shown = ", ".join(kinds[tables.CATEGORY][:4]) + (", ..." if len(kinds[tables.CATEGORY]) > 4 else "")
        parts.append(f"{len(kinds[tables.CATEGORY])} text ({shown})")
    return f"{len(specs)} columns: {', '.join(parts)}"
