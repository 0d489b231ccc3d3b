"""The preprocessing record: what raw input goes through before the model sees it.

One record, fitted once on the training rows, is saved in the model file as plain values and
applied by every consumer (training, evaluation, ``Predictor``, the notebook) through the
functions here, so that no two places prepare input in two ways:

- images: ``{"kind": "image", "shape": [C, H, W], "style": "digit" | "fill"}``. Arrays are
  pixels in [0, 1] (uint8 arrays are divided by 255); people's own pictures are prepared the
  way the data set was made: ``digit`` fits the strokes into 20x20 and centres them by mass
  (MNIST), ``fill`` lets the object fill the frame (Fashion-MNIST).
- tables: ``{"kind": "table", "feature_names", "x_mean", "x_std", "y_mean", "y_std"}``. Features
  are standardised with the training rows' statistics; regression targets too, so one learning
  rate suits any unit, and predictions are turned back into the target's units.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image

from ..errors import UserError
from .images import fill_frame, mnist_like

CLASSIFICATION, REGRESSION = "classification", "regression"
IMAGE, TABLE = "image", "table"
DIGIT, FILL = "digit", "fill"
IMAGE_STYLES = {DIGIT: mnist_like, FILL: fill_frame}


def image_record(shape: tuple[int, ...], style: str = DIGIT) -> dict:
    return {"kind": IMAGE, "shape": list(shape), "style": style}


def fit_table(x: torch.Tensor, y: torch.Tensor | None = None, feature_names: list[str] | None = None) -> dict:
    """Standardisation statistics of the training rows ``x`` (and regression targets ``y``)."""
    # In float64: squares of values near float32's limit (3.4e38) would overflow in float32.
    x = x.double()
    std = x.std(dim=0, correction=1 if len(x) > 1 else 0)
    # A column that never varied in training carries no scale: dividing by its ~0 spread would turn
    # any other value at test time into a huge one.
    std = torch.where(std > 1e-8 * x.abs().amax(dim=0).clamp_min(1.0), std, torch.ones_like(std))
    record = {"kind": TABLE, "feature_names": feature_names, "x_mean": x.mean(dim=0).tolist(), "x_std": std.tolist(),
              "y_mean": 0.0, "y_std": 1.0}
    if y is not None:
        y = y.double()
        record["y_mean"] = y.mean().item()
        record["y_std"] = max(y.std(correction=1 if len(y) > 1 else 0).item(), 1e-8)
    return record


def input_shape(record: dict) -> tuple[int, ...]:
    return tuple(record["shape"]) if record["kind"] == IMAGE else (len(record["x_mean"]),)


def to_model_input(record: dict, x, name: str = "input") -> torch.Tensor:
    """Raw numbers (a tensor or array of one input or a batch) as a float32 batch (N, *shape)."""
    batch, is_uint8 = _as_float_tensor(x, name)
    shape = input_shape(record)
    batch = _as_batch(batch, shape, name)
    if not torch.isfinite(batch).all():
        raise UserError(f"{name}: the input holds NaN or infinite values")
    if record["kind"] == TABLE:
        # Only images are pixels: a uint8 table row is numbers like any other.
        mean, std = (torch.tensor(record[key], dtype=torch.float64) for key in ("x_mean", "x_std"))
        return ((batch.double() - mean) / std).float()
    if is_uint8:
        return batch / 255.0
    low, high = batch.min().item() if batch.numel() else 0.0, batch.max().item() if batch.numel() else 0.0
    if low < 0 or high > 1:
        raise UserError(f"{name}: pixel values must lie in [0, 1], found {low:g} to {high:g} (divide 0..255 "
                        "pixels by 255, or pass a uint8 array)")
    return batch


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
        raise UserError(f"{name}: this model takes table rows of {len(record['x_mean'])} numeric features, "
                        "not images")
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
            ok = (record["kind"] == TABLE and len(record["x_mean"]) == len(record["x_std"]) >= 1
                  and all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)
                  and min(record["x_std"]) > 0 and record["y_std"] > 0)
    except (KeyError, TypeError, ValueError):
        ok = False
    if not ok:
        raise UserError(f"{where}: its preprocessing record is damaged or edited")
    return record
