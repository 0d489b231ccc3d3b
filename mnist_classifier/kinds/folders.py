"""People's pictures: ``--dataset folder:PATH``, a subfolder per class (``data/folders.py`` reads it).

The record is ``{"kind": "photo", "shape": [C, S, S], "resize": "crop" | "pad", "background"}``:
each picture prepared by ``pictures.fit_picture`` with the ``resize`` policy, C 1 or 3. A data
set's rows stay uint8 (the trainer makes floats of a batch at a time); arrays may come
channels-last, (H, W, 3) as Pillow and numpy give them.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..data.pictures import BACKGROUND, RESIZE_POLICIES, fit_picture, working_side
from ..errors import UserError, printable, shortened
from .images import Images

# Defaults for people's pictures, by family, chosen on validation loss by benchmarks/eval_folders.py
# (docs/pictures.md): none yet beat the families' own.
PICTURE_DEFAULTS: dict[str, dict] = {}


class PictureFolder(Images):
    """Photos of any size, resized to one square side; colour kept for 3-channel models."""

    kind, name = "photo", "images"  # what the server's /model says it takes, as for Images
    title = "picture folders"
    prefix, builtins = "folder", ()

    @classmethod
    def load(cls, dataset: str, data_dir: str, resize: str = RESIZE_POLICIES[0], **options):
        from ..data.folders import load_folder  # the folder reader and its cache: only when training

        loaded = load_folder(Path(dataset.partition(":")[2]), data_dir, resize=resize, **options)
        loaded.fixed_record = cls.fit(loaded.input_shape, resize).to_dict()  # its shape: the cache's
        return loaded

    @classmethod
    def defaults(cls, model: str) -> dict:
        return dict(PICTURE_DEFAULTS.get(model, {}))

    @classmethod
    def settings_found(cls, dataset) -> dict:
        return {"image_size": dataset.input_shape[1]}  # the side chosen from the pictures

    @classmethod
    def fit(cls, shape: tuple[int, ...], resize: str = RESIZE_POLICIES[0]) -> PictureFolder:
        return cls({"kind": cls.kind, "shape": list(shape), "resize": resize, "background": list(BACKGROUND)})

    @classmethod
    def fit_dataset(cls, dataset, rows: torch.Tensor | None = None) -> PictureFolder:
        return cls(dataset.fixed_record)

    def reread_options(self) -> dict:
        """A folder is read at the model's own shape: a colour picture added since cannot change its
        channels."""
        return {"image_size": self.values["shape"][1], "channels": self.values["shape"][0]}

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

    def drawing(self) -> bool:
        return False  # a photo model: a drawn digit is not what it learned

    def preparation(self) -> str:
        channels, side, _ = self.input_shape
        how = ("the short side scaled to {s} and the centre {s}x{s} kept" if self.values["resize"] == "crop"
               else "the long side scaled to {s} and the rest padded with the background").format(s=side)
        return (f"pixels as float32 in [0, 1], channels first ({'RGB' if channels == 3 else 'greyscale'}); a "
                f"photo: transparency laid on the background {self.values['background']}, turned upright by its "
                f"EXIF orientation, {how} (bilinear)")

    @classmethod
    def other_test_data(cls, saved: dict, dataset: str, data_dir: str):
        """Another folder's pictures to judge this model on: its ``test/`` split, or every picture,
        prepared by the model's own record, its class folders matched to the model's classes by name."""
        if not cls.owns(dataset):
            return super().other_test_data(saved, dataset, data_dir)

        record, classes = cls(saved["preprocessing"]), saved["dataset"].get("classes")
        channels, side, _ = record.input_shape
        raw = cls.read(dataset, data_dir, image_size=side, resize=record.values["resize"], channels=channels,
                       holdout=True)
        known = [printable(name) for name in classes]  # a file from before names were shown NFC
        unknown = [c for c in raw.classes if c not in known]
        if unknown:
            raise UserError(f"--dataset {dataset}: the class folder {unknown[0]!r} is not one of the model's classes "
                            f"({shortened(', '.join(known))})")
        to_model = torch.tensor([known.index(c) for c in raw.classes], dtype=torch.long)
        x, y = raw.test
        return replace(raw.prepared(record.to_dict()), test=(x, to_model[y]), classes=classes)
