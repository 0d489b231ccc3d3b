"""The preprocessing record: what raw input goes through before the model sees it.

One record, fitted once on the training rows, is saved in the model file as plain values and
applied by every consumer (training, evaluation, ``Predictor``, the server, an export, the
notebook) through its kind of data, so that no two places prepare input in two ways. Each kind owns
its record (``mnist_classifier/kinds/``: images, picture folders, tables; ``kinds.as_record`` gives
a file's). The functions here take the plain record, as model files hold it, and hand it to its
kind: for the estimators, the notebook and code written against them before the kinds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from PIL import Image

from ..errors import UserError
from ..kinds import KINDS, as_record
from ..kinds.base import CLASSIFICATION, DIGIT, FILL, REGRESSION
from ..kinds.folders import PictureFolder
from ..kinds.images import Images
from ..kinds.tables import Table
from ..kinds.texts import Text

__all__ = ["CLASSIFICATION", "DIGIT", "FILL", "REGRESSION", "as_record"]


def image_record(shape: tuple[int, ...], style: str = DIGIT) -> dict:
    return Images.fit(shape, style).to_dict()


def photo_record(shape: tuple[int, ...], resize: str = "crop") -> dict:
    return PictureFolder.fit(shape, resize).to_dict()


def fit_table(x: pd.DataFrame | torch.Tensor, y: torch.Tensor | None = None,
              feature_names: list[str] | None = None, na_values=()) -> dict:
    """``Table.fit`` as plain values."""
    return Table.fit(x, y, feature_names, na_values).to_dict()


def input_shape(record: dict) -> tuple[int, ...]:
    return as_record(record).input_shape


def table_columns(record: dict) -> list[dict]:
    """The record's column specs; files from before text columns: a number per input."""
    return Table.from_dict(record).columns


def fit_texts(texts: list[str]) -> dict:
    """The record for raw documents: a tokenizer and a cut fitted on these (training) texts."""
    return Text.fit(texts).to_dict()


def to_model_rows(record: dict, x, name: str = "input"):
    """A data set's raw rows as the trainer takes them (texts: ``TokenRows``, padded a batch at a time)."""
    return as_record(record).prepare_rows(x, name)


def to_model_input(record: dict, x, name: str = "input") -> torch.Tensor:
    """Raw input as a float32 batch (N, *shape): images as tensors or arrays of one or many; table
    rows as a pandas DataFrame, a dict per row, or an array of raw values (one row or many)."""
    return as_record(record).apply(x, name)


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
    return {"kind": Table.kind, "feature_names": metadata.get("feature_names"), "x_mean": metadata["x_mean"],
            "x_std": metadata["x_std"], "y_mean": metadata.get("y_mean", 0.0), "y_std": metadata.get("y_std", 1.0)}


def check_record(record, where: str) -> dict:
    """Refuse a record whose parts do not fit together (an edited or damaged model file)."""
    try:
        ok = isinstance(record, dict) and record.get("kind") in KINDS and as_record(record).check()
    except (KeyError, TypeError, ValueError):
        ok = False
    if not ok:
        raise UserError(f"{where}: its preprocessing record is damaged or edited")
    return record


def describe_columns(record: dict, details: bool = False) -> str:
    """A table model's columns in a few words: "8 columns: 5 numbers, 1 yes/no, 2 text (city, job)";
    with ``details``, each text column's levels and the gaps' fills too."""
    return Table.from_dict(record).describe(details)

