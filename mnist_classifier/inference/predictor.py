"""Use a trained model from Python in three lines:

    from mnist_classifier import Predictor
    predictor = Predictor("model.pth")
    predictor.predict("my_digit.png")  # or a tensor, a numpy array, a PIL image, a list of them

A table model takes rows: a pandas DataFrame, a dict per row (column name -> value), or an
array of raw values in the columns' order (text columns as text).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..data.images import open_image
from ..errors import UserError, first_line, printable
from ..kinds import CLASSIFICATION, as_record
from ..kinds.base import PICTURE_SOURCES
from .model_file import load_model
from .tta import averaged_log_probs, views_for


@dataclass
class Prediction:
    source: str
    label: str | float  # the class name, or the predicted value for regression
    probability: float | None = None  # of ``label``; None for regression
    top_k: list[tuple[str, float]] = field(default_factory=list)
    model_input: np.ndarray | None = None  # what the model saw, for images: (H, W), or (H, W, 3) for colour

    def to_dict(self) -> dict:
        return {"source": self.source, "label": self.label, "probability": self.probability,
                "top_k": [{"label": label, "probability": p} for label, p in self.top_k]}


class Predictor:
    """A model file, ready to predict on raw input: images, tensors or numpy arrays.

    Every input goes through the model file's preprocessing record, the one training used.
    """

    def __init__(self, model_fn: str | Path, tta: bool = False):
        """``tta``: average each image's probabilities over the mirror and shifts its run trained with
        (``inference.tta``)."""
        self.model, saved = load_model(model_fn)
        self.model_name = saved["model_name"]
        self.record = saved["preprocessing"]
        self.data_kind = as_record(self.record)  # the record as its kind of data: what input it takes
        self.metadata = saved["dataset"]
        self.task = self.metadata.get("task", CLASSIFICATION)
        classes = self.metadata.get("classes")  # shown as written, but printable (files from before names were)
        self.classes = [printable(name) for name in classes] if classes else classes
        self.input_shape = self.data_kind.input_shape
        self.history = saved.get("history", [])
        self.views = views_for(saved) if tta else None

    @property
    def takes_images(self) -> bool:
        """Whether the model takes people's pictures (paths, PIL images); else rows of its kind."""
        return self.data_kind.takes_pictures

    def predict(self, inputs, top_k: int = 3) -> list[Prediction]:
        """Predict for an image path, a PIL image, a tensor or array of one or many inputs, or a list;
        for a table model also a DataFrame, a dict (one row) or a list of dicts."""
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise UserError(f"top_k must be a positive integer, got {top_k!r}")
        return self.data_kind.predict(self, inputs, top_k)  # which inputs are pictures, rows or arrays

    def predict_each(self, sources: list, top_k: int = 3) -> list[Prediction | UserError]:
        """One result per image source, in order: its prediction, or the ``UserError`` that says why
        it could not be read. One bad file among many costs only itself."""
        results: list = []
        for source in sources:
            try:
                results.append(self.image_input(source))
            except UserError as e:
                results.append(e)
        good = [i for i, r in enumerate(results) if not isinstance(r, UserError)]
        if good:
            images = [results[i] for i in good]
            names = [source_name(sources[i]) for i in good]
            predictions = self._predict_batch(torch.from_numpy(np.stack(images)), top_k, names)
            for i, prediction, image in zip(good, predictions, images, strict=True):
                prediction.model_input = image[0] if len(image) == 1 else image.transpose(1, 2, 0)
                results[i] = prediction
        return results

    def rows(self, rows, top_k: int = 3, name: str = "input") -> list[Prediction]:
        """Predictions for a table model's rows (a DataFrame, dicts, or an array of raw values in the
        columns' order), named "NAME, row 1", "NAME, row 2", ..."""
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise UserError(f"top_k must be a positive integer, got {top_k!r}")
        x = self.data_kind.apply(rows, name)
        note = self.data_kind.gaps_note(rows, name)
        if note:  # answered by the training rule, but the caller should know
            warnings.warn(note, UserWarning, stacklevel=2)
        return self._predict_batch(x, top_k, [f"{name}, row {i}" for i in range(1, len(x) + 1)])

    def predict_numbers(self, arrays: list, top_k: int) -> list[Prediction]:
        """Predictions for tensors, arrays or nested lists of model input, one input or a batch each."""
        x = torch.cat([self.data_kind.apply(array) for array in arrays])
        return self._predict_batch(x, top_k, [f"input {i}" for i in range(len(x))])

    def image_input(self, source) -> np.ndarray:
        """An image file, stream or PIL image as this model's input (C, H, W), prepared as its data was."""
        if not self.data_kind.takes_pictures:
            raise UserError(self.data_kind.not_pictures())
        if not isinstance(source, PICTURE_SOURCES):
            raise UserError(f"cannot predict on a {type(source).__name__}: give image paths, images or arrays")
        try:
            side = self.data_kind.working_side  # as training decoded its pictures
            image = source if isinstance(source, Image.Image) else open_image(source, working_side=side)
            return self.data_kind.prepare_image(image, name=source_name(source))
        except (ValueError, TypeError) as e:  # a closed image or file, a text stream, an unknown colour mode
            raise UserError(f"{source_name(source)}: cannot be read as an image ({first_line(e)})") from e

    def log_probs(self, x: torch.Tensor) -> torch.Tensor:
        """The model's raw output for prepared input (N, *input_shape): log-probabilities for classes."""
        with torch.inference_mode():
            if not len(x):
                return self.model(x)
            return torch.cat([averaged_log_probs(self.model, chunk, self.views) for chunk in x.split(4096)])

    def _predict_batch(self, x: torch.Tensor, top_k: int, sources: list[str]) -> list[Prediction]:
        return self.predictions(self.log_probs(x), sources, top_k)

    def predictions(self, output: torch.Tensor, sources: list[str], top_k: int = 3) -> list[Prediction]:
        """The model's output for a batch (log-probabilities, or standardised values for regression),
        from this model or an export of it, as one ``Prediction`` per row: the one answer path."""
        broken = ~torch.isfinite(output.flatten(1) if output.dim() > 1 else output[:, None]).all(dim=1)
        if broken.any():  # topk would pick class 0 from NaN: never an answer
            raise UserError(f"{sources[int(broken.nonzero()[0])]}: the model's output is not a number (NaN or "
                            "infinite); the model file may be damaged, or the input lies far outside its training data")
        if self.task != CLASSIFICATION:
            values = self.data_kind.from_output(output.squeeze(-1))
            return [Prediction(source, float(v)) for source, v in zip(sources, values, strict=True)]
        best = output.exp().topk(min(top_k, len(self.classes)), dim=-1)
        return [
            Prediction(source, self.classes[int(idx[0])], float(p[0]),
                       [(self.classes[int(i)], float(q)) for i, q in zip(idx, p, strict=True)])
            for source, p, idx in zip(sources, best.values, best.indices, strict=True)
        ]





def source_name(item) -> str:
    """How an input is named in predictions and errors: its path, its stream's name, or "image"."""
    if isinstance(item, Image.Image):
        return "image"
    return printable(str(getattr(item, "name", item)))  # a name that is not UTF-8 must still print
