"""Use a trained model from Python in three lines:

    from mnist_classifier import Predictor
    predictor = Predictor("model.pth")
    predictor.predict("my_digit.png")  # or a tensor, a numpy array, a PIL image, a list of them
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .datasets import CLASSIFICATION
from .errors import UserError
from .images import mnist_like, open_image
from .model_file import load_model

# Model files from before datasets were recorded were all MNIST.
MNIST_METADATA = {"name": "mnist", "task": CLASSIFICATION, "input_shape": [28, 28],
                  "classes": [str(d) for d in range(10)], "x_mean": None, "x_std": None, "y_mean": 0.0, "y_std": 1.0}


@dataclass
class Prediction:
    source: str
    label: str | float  # the class name, or the predicted value for regression
    probability: float | None = None  # of ``label``; None for regression
    top_k: list[tuple[str, float]] = field(default_factory=list)
    model_input: np.ndarray | None = None  # what the model saw, for images

    def to_dict(self) -> dict:
        return {"source": self.source, "label": self.label, "probability": self.probability,
                "top_k": [{"label": label, "probability": p} for label, p in self.top_k]}


class Predictor:
    """A model file, ready to predict on raw input: images, tensors or numpy arrays."""

    def __init__(self, model_fn: str | Path):
        self.model, saved = load_model(model_fn)
        self.metadata = saved.get("dataset") or MNIST_METADATA
        self.task = self.metadata["task"]
        self.classes = self.metadata["classes"]
        self.input_shape = tuple(self.metadata["input_shape"])
        self.input_size = int(np.prod(self.input_shape))
        self.history = saved.get("history", [])

    @property
    def takes_images(self) -> bool:
        return len(self.input_shape) == 2

    def predict(self, inputs, top_k: int = 3) -> list[Prediction]:
        """Predict for an image path, a PIL image, a tensor or array of one or many inputs, or a list."""
        if isinstance(inputs, (torch.Tensor, np.ndarray)):
            array = inputs.detach().cpu().numpy() if isinstance(inputs, torch.Tensor) else inputs
            return self._predict_arrays(array, top_k, [f"input {i}" for i in range(self._count(array))])
        items = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        if not items:
            raise UserError("nothing to predict: no inputs were given")
        images = [self.image_input(item) for item in items]
        predictions = self._predict_arrays(np.stack(images), top_k, [_name(item) for item in items])
        for prediction, image in zip(predictions, images, strict=True):
            prediction.model_input = image
        return predictions

    def image_input(self, source) -> np.ndarray:
        """An image file, stream or PIL image as this model's input: MNIST-like, in [0, 1]."""
        if not self.takes_images:
            raise UserError(f"this model takes {self.input_size} numeric features, not images")
        if not isinstance(source, (str, Path, Image.Image, io.IOBase)):
            raise UserError(f"cannot predict on a {type(source).__name__}: give image paths, images or arrays")
        image = source if isinstance(source, Image.Image) else open_image(source)
        return mnist_like(image, side=self.input_shape[0], name=_name(source))

    def log_probs(self, x: torch.Tensor) -> torch.Tensor:
        """The model's raw output for already-prepared input of shape (N, features)."""
        with torch.inference_mode():
            return self.model(x)

    def _count(self, array: np.ndarray) -> int:
        if array.shape == self.input_shape or array.shape == (self.input_size,):
            return 1
        if array.ndim >= 1 and array.shape[1:] in (self.input_shape, (self.input_size,)):
            return array.shape[0]
        raise UserError(f"this model takes inputs of shape {self.input_shape} ({self.input_size} values) "
                        f"from the {self.metadata['name']} data; got an array of shape {array.shape}")

    def _predict_arrays(self, array: np.ndarray, top_k: int, sources: list[str]) -> list[Prediction]:
        n = self._count(array)
        x = torch.as_tensor(np.asarray(array, dtype=np.float32)).reshape(n, self.input_size)
        if array.dtype == np.uint8:
            x = x / 255.0
        if self.metadata.get("x_mean") is not None:
            x = (x - torch.tensor(self.metadata["x_mean"])) / torch.tensor(self.metadata["x_std"])
        output = self.log_probs(x)
        if self.task != CLASSIFICATION:
            values = output.squeeze(-1) * self.metadata["y_std"] + self.metadata["y_mean"]
            return [Prediction(source, float(v)) for source, v in zip(sources, values, strict=True)]
        probabilities = output.exp()
        best = probabilities.topk(min(top_k, len(self.classes)), dim=-1)
        return [
            Prediction(source, self.classes[int(idx[0])], float(p[0]),
                       [(self.classes[int(i)], float(q)) for i, q in zip(idx, p, strict=True)])
            for source, p, idx in zip(sources, best.values, best.indices, strict=True)
        ]


def _name(item) -> str:
    if isinstance(item, Image.Image):
        return "image"
    return str(getattr(item, "name", item))
