"""People's photos as fixed-size model input: the one resize policy of folder data.

Training (the cache), ``Predictor``, ``mnist-predict``, the server and exports all prepare a
picture through ``fit_picture``, so a photo is seen the same way wherever it is given:

- transparency is laid on ``BACKGROUND`` (white: the usual page behind a cut-out picture);
- colour stays RGB for 3-channel models; 1-channel models see its brightness;
- ``crop`` (the default) scales the short side to the model's size and keeps the centre, as
  torchvision's ``Resize`` + ``CenterCrop`` do; ``pad`` fits the long side and pads the rest
  with the background, keeping the whole picture.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps

from ..errors import UserError

CROP, PAD = "crop", "pad"
RESIZE_POLICIES = (CROP, PAD)
BACKGROUND = (255, 255, 255)
# Modes that hold only brightness (with or without transparency); everything else counts as colour.
GRAY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
ORIENTATION = 0x0112  # the EXIF tag
# Pillow's filter for every resize: antialiased when shrinking, and several times faster than Lanczos.
RESAMPLE = Image.Resampling.BILINEAR


def working_side(side: int) -> int:
    """How large a photo is decoded before it is resized to ``side``: JPEGs decode at a fraction of
    their size, and huge pictures are reduced at once (the cache and every predictor alike)."""
    return max(4 * side, 256)


def is_colour(image: Image.Image) -> bool:
    """Whether a picture has colour channels; a palette counts unless all its entries are greys."""
    if image.mode in ("P", "PA"):
        palette = image.getpalette() or []
        return any(palette[i] != palette[i + 1] or palette[i] != palette[i + 2] for i in range(0, len(palette) - 2, 3))
    return image.mode not in GRAY_MODES


def flattened(image: Image.Image, channels: int) -> Image.Image:
    """The picture in mode RGB (3 channels) or L (1), transparency laid on ``BACKGROUND``."""
    image = eight_bit(image)
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (*BACKGROUND, 255)), rgba)
    mode = "RGB" if channels == 3 else "L"
    return image if image.mode == mode else image.convert(mode)


def eight_bit(image: Image.Image) -> Image.Image:
    """A grayscale picture of 16 or 32 bits, or of floats, as 8-bit L; any other picture as it is. Done
    before a large picture is reduced too: a 16-bit picture reduced becomes a 32-bit one whose range
    would no longer say it had 16 bits, so one picture would give two answers by its size."""
    if image.mode.startswith("I;16") or image.mode == "I":
        # 16-bit and 32-bit grayscale: scaled to 8 bits by their own range, not clipped at 255.
        values = np.asarray(image, dtype=np.float64)
        # 16-bit data (as "I" too, once Pillow has reduced it) on its 16-bit range; 8-bit values stay 8-bit.
        top = 65535.0 if image.mode.startswith("I;16") or values.max() > 255 else 255.0
        image = Image.fromarray(np.clip(values / top * 255, 0, 255).astype(np.uint8), mode="L")
    elif image.mode == "F":
        values = np.nan_to_num(np.asarray(image, dtype=np.float64))
        top = 1.0 if values.max() <= 1.0 else 255.0
        image = Image.fromarray(np.clip(values / top * 255, 0, 255).astype(np.uint8), mode="L")
    return image


def fit_picture(image: Image.Image, side: int, channels: int, resize: str = CROP, name: str = "image"
                ) -> np.ndarray:
    """A picture as uint8 (channels, side, side): flattened, turned upright (EXIF), resized by ``resize``."""
    if 0 in image.size:
        raise UserError(f"{name}: the image has no pixels ({image.width}x{image.height})")
    if image.getexif().get(ORIENTATION, 1) != 1:  # a camera's "turned" flag: turn the pixels instead
        image = ImageOps.exif_transpose(image)
    image = flattened(image, channels)
    if image.size == (side, side):
        fitted = image  # already the model's size: both policies leave it as it is
    elif resize == PAD:
        fitted = ImageOps.pad(image, (side, side), method=RESAMPLE, color=BACKGROUND if channels == 3 else 255)
    else:
        fitted = ImageOps.fit(image, (side, side), method=RESAMPLE)
    array = np.asarray(fitted, dtype=np.uint8)
    return array[None] if channels == 1 else np.ascontiguousarray(array.transpose(2, 0, 1))
