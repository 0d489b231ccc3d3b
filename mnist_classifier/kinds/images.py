"""Images like MNIST's: the built-in sets (``mnist``, ``fashion-mnist``, ``digits``) and arrays of
pixels in [0, 1].

The record is ``{"kind": "image", "shape": [C, H, W], "style": "digit" | "fill"}``. Arrays are pixels
in [0, 1] (uint8 arrays are divided by 255); people's own pictures are prepared the way the data set
was made: ``digit`` fits the strokes into 20x20 and centres them by mass (MNIST), ``fill`` lets the
object fill the frame (Fashion-MNIST).
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from ..data.images import fill_frame, mnist_like
from ..errors import UserError
from .base import DIGIT, FILL, PICTURE_SOURCES, Kind, as_batch, as_float_tensor

IMAGE_STYLES = {DIGIT: mnist_like, FILL: fill_frame}
# How each style prepares people's pictures, in words for consumers in other languages (an export).
PREPARATION = {
    DIGIT: "pixels as float32 in [0, 1], light ink on black; a picture of a digit: greyscale, inverted if the "
           "background is light, cropped to the ink, fitted into 20x20 keeping its aspect ratio and centred "
           "by its centre of mass in the 28x28 frame (as MNIST was made)",
    FILL: "pixels as float32 in [0, 1], light object on black; a photo: greyscale, inverted if the background "
          "is light, fitted to fill the frame (as Fashion-MNIST was made)",
}


class Images(Kind):
    """Pictures of ``shape`` (C, H, W), pixels in [0, 1]; people's own pictures are prepared in the
    data set's ``style``."""

    kind, name = "image", "images"
    title = "images"
    builtins = ("mnist", "fashion-mnist", "digits")
    unit = "images"
    takes_pictures = True

    @classmethod
    def load(cls, dataset: str, data_dir: str, **options):
        from ..data.datasets import LOADERS  # the built-in sets' files: read only when training

        return LOADERS[dataset](data_dir=data_dir)

    @classmethod
    def fit(cls, shape: tuple[int, ...], style: str = DIGIT) -> Images:
        return cls({"kind": cls.kind, "shape": list(shape), "style": style})

    @classmethod
    def fit_dataset(cls, dataset, rows: torch.Tensor | None = None) -> Images:
        return cls.fit(dataset.input_shape, dataset.image_style)

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
        batch, is_uint8 = as_float_tensor(x, name)
        batch = as_batch(batch, self.input_shape, name)
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

    def predict(self, predictor, inputs, top_k: int) -> list:
        """Paths and pictures are prepared as the data set was; tensors, arrays and nested lists are
        pixels, one input or a batch each."""
        if isinstance(inputs, (torch.Tensor, np.ndarray)):
            return predictor.predict_numbers([inputs], top_k)
        items = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        if not items:
            raise UserError("nothing to predict: no inputs were given")
        if all(isinstance(item, (torch.Tensor, np.ndarray)) for item in items):
            return predictor.predict_numbers(items, top_k)
        if not any(isinstance(item, PICTURE_SOURCES) for item in items):
            return predictor.predict_numbers([items], top_k)  # nested lists of numbers
        results = predictor.predict_each(items, top_k)
        for result in results:
            if isinstance(result, UserError):
                raise result
        return results

    def drawing(self) -> bool:
        return self.input_shape[0] == 1  # a pad suits digit-like models: one channel, prepared the MNIST way

    def preparation(self) -> str:
        return PREPARATION[self.values["style"]]

    def parity_inputs(self, rows: int, generator: torch.Generator) -> torch.Tensor:
        return torch.rand((rows, *self.input_shape), generator=generator)
