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

Each kind is a small class (``ImageRecord``, ``TableRecord``) around those plain values, with
``fit``, ``apply``, ``to_dict``/``from_dict``, ``check`` and ``describe``; ``RECORDS`` maps a
file's ``kind`` to its class, the one place the kind is looked at. The functions below take the
plain record (as model files hold it) and hand it to its class. A new kind of input is a new
class and one line in ``RECORDS``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
from PIL import Image

from ..errors import UserError, first_line
from . import tables
from .images import WORKING_SIDE, fill_frame, mnist_like
from .pictures import BACKGROUND, RESIZE_POLICIES, fit_picture, working_side

CLASSIFICATION, REGRESSION = "classification", "regression"
IMAGE, TABLE, PHOTO = "image", "table", "photo"
DIGIT, FILL = "digit", "fill"
IMAGE_STYLES = {DIGIT: mnist_like, FILL: fill_frame}


class Record:
    """A kind of input around its plain values (what the model file holds)."""

    kind: str
    takes_images: bool

    def __init__(self, values: dict):
        self.values = values

    @classmethod
    def from_dict(cls, values: dict):
        return cls(values)

    def to_dict(self) -> dict:
        return dict(self.values)

    def prepare_rows(self, x, name: str = "input"):
        """A data set's rows as the trainer takes them: by default, model input."""
        return self.apply(x, name)

    working_side = WORKING_SIDE  # how large a person's picture is decoded before it is prepared


class ImageRecord(Record):
    """Pictures of ``shape`` (C, H, W), pixels in [0, 1]; people's own pictures are prepared in the
    data set's ``style``."""

    kind = IMAGE
    takes_images = True

    @classmethod
    def fit(cls, shape: tuple[int, ...], style: str = DIGIT) -> ImageRecord:
        return cls({"kind": IMAGE, "shape": list(shape), "style": style})

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.values["shape"])

    def check(self) -> bool:
        shape = self.values["shape"]
        return (len(shape) == 3 and all(isinstance(v, int) and v >= 1 for v in shape)
                and self.values["style"] in IMAGE_STYLES)

    def describe(self) -> str:
        return f"images {self.input_shape}, prepared the {self.values['style']} way"

    def apply(self, x, name: str = "input") -> torch.Tensor:
        """Images (one, or a batch) as a float32 batch (N, C, H, W); uint8 pixels divided by 255."""
        batch, is_uint8 = _as_float_tensor(x, name)
        batch = _as_batch(batch, self.input_shape, name)
        if not torch.isfinite(batch).all():
            raise UserError(f"{name}: the input holds NaN or infinite values")
        if is_uint8:
            return batch / 255.0
        low, high = batch.min().item() if batch.numel() else 0.0, batch.max().item() if batch.numel() else 0.0
        if low < 0 or high > 1:
            raise UserError(f"{name}: pixel values must lie in [0, 1], found {low:g} to {high:g} (divide 0..255 "
                            "pixels by 255, or pass a uint8 array)")
        return batch

    def prepare_image(self, image: Image.Image, name: str = "image") -> np.ndarray:
        """A person's picture as this record's model input: float32 (C, H, W) in [0, 1]."""
        channels, height, width = self.values["shape"]
        if channels != 1 or height != width:
            raise UserError(f"{name}: pictures can be prepared for square grayscale models only; this one takes "
                            f"{self.input_shape} arrays")
        return IMAGE_STYLES[self.values["style"]](image, side=height, name=name)[None]

    def to_target(self, y: torch.Tensor) -> torch.Tensor:
        return y

    def from_output(self, output: torch.Tensor) -> torch.Tensor:
        return output

    target_scale = 1.0


class TableRecord(Record):
    """Table rows: column specs (``tables.py``), then standardisation with the training rows'
    statistics; regression targets standardised too."""

    kind = TABLE
    takes_images = False

    @classmethod
    def fit(cls, x: pd.DataFrame | torch.Tensor, y: torch.Tensor | None = None,
            feature_names: list[str] | None = None, na_values=()) -> TableRecord:
        """How the training rows ``x`` (and regression targets ``y``) become model input: column specs
        (gap fills included) and standardisation statistics, from these rows only. ``na_values``:
        the words that also mean a gap (``--na_values``)."""
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
        values = {"kind": TABLE, "feature_names": [spec["name"] for spec in specs], "columns": specs,
                  "x_mean": mean.tolist(), "x_std": std.tolist(), "y_mean": 0.0, "y_std": 1.0}
        if y is not None:
            y = y.double()
            values["y_mean"] = y.mean().item()
            values["y_std"] = max(y.std(correction=1 if len(y) > 1 else 0).item(), 1e-8)
        return cls(values)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (len(self.values["x_mean"]),)

    @property
    def columns(self) -> list[dict]:
        return table_columns(self.values)

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

    def apply(self, x, name: str = "input") -> torch.Tensor:
        """Table rows, encoded by the column specs, then standardised: never scaled as pixels."""
        encoded = torch.from_numpy(tables.encode(self.columns, table_frame(self.columns, x, name), name))
        mean, std = (torch.tensor(self.values[key], dtype=torch.float64) for key in ("x_mean", "x_std"))
        return ((encoded - mean) / std).float()

    def not_images(self) -> str:
        """The one refusal of a picture, wherever one is given to a table model."""
        return f"this model takes table rows ({self.describe()}), not images"

    def prepare_image(self, image: Image.Image, name: str = "image") -> np.ndarray:
        raise UserError(f"{name}: {self.not_images()}")

    def to_target(self, y: torch.Tensor) -> torch.Tensor:
        if torch.is_floating_point(y):
            return ((y.double() - self.values["y_mean"]) / self.values["y_std"]).float()
        return y

    def from_output(self, output: torch.Tensor) -> torch.Tensor:
        return (output.double() * self.values["y_std"] + self.values["y_mean"]).float()

    @property
    def target_scale(self) -> float:
        return self.values["y_std"]


class PhotoRecord(ImageRecord):
    """People's photos (a ``folder:PATH`` data set): ``shape`` (C, S, S) with C 1 or 3, each picture
    prepared by ``pictures.fit_picture`` with the ``resize`` policy. A data set's rows stay uint8 (the
    trainer makes floats of a batch at a time); arrays may come channels-last, (H, W, 3) as Pillow
    and numpy give them."""

    kind = PHOTO

    @classmethod
    def fit(cls, shape: tuple[int, ...], resize: str = RESIZE_POLICIES[0]) -> PhotoRecord:
        return cls({"kind": PHOTO, "shape": list(shape), "resize": resize, "background": list(BACKGROUND)})

    def check(self) -> bool:
        shape = self.values["shape"]
        return (len(shape) == 3 and all(isinstance(v, int) and v >= 1 for v in shape) and shape[0] in (1, 3)
                and shape[1] == shape[2] and self.values["resize"] in RESIZE_POLICIES)

    def describe(self) -> str:
        channels, side, _ = self.input_shape
        return f"{'RGB' if channels == 3 else 'grayscale'} pictures, {side}x{side} ({self.values['resize']})"

    def apply(self, x, name: str = "input") -> torch.Tensor:
        return super().apply(self._channels_first(x), name)

    def prepare_rows(self, x, name: str = "input"):
        if getattr(x, "dtype", None) == torch.uint8 and tuple(x.shape[1:]) == self.input_shape:
            return x  # a uint8 cache, in memory or mapped: made float a batch at a time
        return self.apply(x, name)

    def _channels_first(self, x):
        """(H, W, C) and (N, H, W, C) arrays as (C, H, W) and (N, C, H, W); anything else unchanged."""
        channels, side, _ = self.input_shape
        shape = tuple(getattr(x, "shape", ()))
        if channels == 1 or len(shape) not in (3, 4) or shape[-3:] == self.input_shape:
            return x
        if shape[-3:] == (side, side, channels):
            axes = (2, 0, 1) if len(shape) == 3 else (0, 3, 1, 2)
            return x.permute(*axes) if isinstance(x, torch.Tensor) else np.transpose(np.asarray(x), axes)
        return x

    @property
    def working_side(self) -> int:
        return working_side(self.input_shape[1])  # as the folder's cache decoded its pictures

    def prepare_image(self, image: Image.Image, name: str = "image") -> np.ndarray:
        channels, side, _ = self.input_shape
        return fit_picture(image, side, channels, self.values["resize"], name).astype(np.float32) / 255.0


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


# A model file's "kind" -> the class that reads its record.
RECORDS = {IMAGE: ImageRecord, TABLE: TableRecord, PHOTO: PhotoRecord}


def as_record(record: dict) -> Record:
    """The class for a (checked) plain record, around its values."""
    return RECORDS[record["kind"]].from_dict(record)


def takes_images(record: dict) -> bool:
    return as_record(record).takes_images


def image_record(shape: tuple[int, ...], style: str = DIGIT) -> dict:
    return ImageRecord.fit(shape, style).to_dict()


def photo_record(shape: tuple[int, ...], resize: str = RESIZE_POLICIES[0]) -> dict:
    return PhotoRecord.fit(shape, resize).to_dict()


def prepare_rows(record: dict, x, name: str = "input"):
    """A data set's rows as the trainer takes them: model input, or a folder's uint8 cache as it is."""
    return as_record(record).prepare_rows(x, name)


def fit_table(x: pd.DataFrame | torch.Tensor, y: torch.Tensor | None = None,
              feature_names: list[str] | None = None, na_values=()) -> dict:
    """``TableRecord.fit`` as plain values."""
    return TableRecord.fit(x, y, feature_names, na_values).to_dict()


def input_shape(record: dict) -> tuple[int, ...]:
    return as_record(record).input_shape


def table_columns(record: dict) -> list[dict]:
    """The record's column specs; files from before text columns: a number per input."""
    if "columns" in record:
        return record["columns"]
    names = record.get("feature_names") or [f"x{i}" for i in range(len(record["x_mean"]))]
    return [{"name": str(name), "type": tables.NUMBER} for name in names]


def to_model_input(record: dict, x, name: str = "input") -> torch.Tensor:
    """Raw input as a float32 batch (N, *shape): images as tensors or arrays of one or many; table
    rows as a pandas DataFrame, a dict per row, or an array of raw values (one row or many)."""
    return as_record(record).apply(x, name)


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
    return as_record(record).to_target(y)


def target_scale(record: dict) -> float:
    """How many target units one unit of a regression model's output is (1 for classes)."""
    return as_record(record).target_scale


def from_model_output(record: dict, output: torch.Tensor) -> torch.Tensor:
    """A regression model's output back in the target's units."""
    return as_record(record).from_output(output)


def prepare_image(record: dict, image: Image.Image, name: str = "image") -> np.ndarray:
    """A person's picture as this record's model input: float32 (C, H, W) in [0, 1]."""
    return as_record(record).prepare_image(image, name)


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
        ok = isinstance(record, dict) and record.get("kind") in RECORDS and as_record(record).check()
    except (KeyError, TypeError, ValueError):
        ok = False
    if not ok:
        raise UserError(f"{where}: its preprocessing record is damaged or edited")
    return record


def describe_columns(record: dict, details: bool = False) -> str:
    """A table model's columns in a few words: "8 columns: 5 numbers, 1 yes/no, 2 text (city, job)";
    with ``details``, each text column's levels and the gaps' fills too."""
    return TableRecord.from_dict(record).describe(details)


def gaps_note(record: dict, x, name: str = "input") -> str | None:
    """A line on the gaps in table rows ``x`` where the training rows had none (filled by the same
    rule, but worth saying); None when there are none."""
    specs = table_columns(record)
    gaps = tables.unexpected_gaps(specs, table_frame(specs, x, name), name)
    return f"{name}: {tables.describe_gaps(specs, gaps)}" if gaps else None
