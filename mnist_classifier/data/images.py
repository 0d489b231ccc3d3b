"""People's own images turned into model input the way the data set itself was made.

MNIST digits are light on a dark background, cropped to their bounding box, scaled to fit a
20x20 box with their aspect ratio kept, and pasted into 28x28 so that their centre of mass sits
at the centre. Doing the same to a photo or a drawing is what makes the model's accuracy carry
over to it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import UserError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
INK_THRESHOLD = 0.2  # pixels above this share of the brightest one count as the digit


def open_image(source) -> Image.Image:
    """Open a path or a binary stream as an image, with a clear error for anything else."""
    name = getattr(source, "name", source)
    try:
        image = Image.open(source)
        image.load()
    except FileNotFoundError:
        raise UserError(f"{name}: no such file") from None
    except (UnidentifiedImageError, OSError) as e:
        raise UserError(f"{name}: not an image this program can read ({e.__class__.__name__})") from None
    return image


def image_files(paths: list[str]) -> list[Path]:
    """Expand folders into the images they hold, in name order; keep files as given."""
    found = []
    for path in map(Path, paths):
        if path.is_dir():
            images = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not images:
                raise UserError(f"{path}: the folder holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
            found.extend(images)
        else:
            found.append(path)
    return found


def mnist_like(image: Image.Image, side: int = 28, name: str = "image") -> np.ndarray:
    """A (side, side) float32 array in [0, 1]: light digit on black, fitted and centred like MNIST."""
    digit = _cropped_ink(image, name)
    return _centre_by_mass(_fit(digit, box=round(side * 20 / 28)), side)


def fill_frame(image: Image.Image, side: int = 28, name: str = "image") -> np.ndarray:
    """A (side, side) float32 array in [0, 1]: a light object on black that fills the frame, as
    Fashion-MNIST's clothes do (longer side scaled to the frame, centred)."""
    item = _fit(_cropped_ink(image, name), box=side)
    height, width = item.shape
    canvas = np.zeros((side, side), dtype=np.float32)
    top, left = (side - height) // 2, (side - width) // 2
    canvas[top : top + height, left : left + width] = item
    return canvas


def _cropped_ink(image: Image.Image, name: str) -> np.ndarray:
    """Grayscale in [0, 1], light on a black background, cropped to what stands out."""
    gray = np.asarray(ImageOps.exif_transpose(image).convert("L"), dtype=np.float32) / 255.0
    if _border_mean(gray) > 0.5:
        gray = 1.0 - gray  # dark ink on light paper: invert to MNIST's light-on-dark
    gray = np.clip(gray - _border_mean(gray), 0, 1)  # a grey background becomes black
    if gray.max() < 0.05:
        raise UserError(f"{name}: the image is empty (nothing stands out from the background)")
    ink = gray >= INK_THRESHOLD * gray.max()
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    return gray[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _border_mean(gray: np.ndarray) -> float:
    return float(np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]]).mean())


def _fit(digit: np.ndarray, box: int) -> np.ndarray:
    """Scale so that the longer side is ``box`` pixels, keeping the aspect ratio."""
    height, width = digit.shape
    scale = box / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resized = Image.fromarray(digit).resize(size, Image.Resampling.LANCZOS)
    return np.clip(np.asarray(resized, dtype=np.float32), 0, 1)


def _centre_by_mass(digit: np.ndarray, side: int) -> np.ndarray:
    """Paste into a side x side canvas with the centre of mass at the centre."""
    height, width = digit.shape
    total = digit.sum()
    row_mass = (digit.sum(axis=1) * np.arange(height)).sum() / total
    col_mass = (digit.sum(axis=0) * np.arange(width)).sum() / total
    top = int(round((side - 1) / 2 - row_mass))
    left = int(round((side - 1) / 2 - col_mass))
    canvas = np.zeros((side, side), dtype=np.float32)
    # Clip to the canvas: a very lopsided digit may not fit once its mass is centred.
    r0, c0 = max(top, 0), max(left, 0)
    r1, c1 = min(top + height, side), min(left + width, side)
    canvas[r0:r1, c0:c1] = digit[r0 - top : r1 - top, c0 - left : c1 - left]
    return canvas


def save_preview(array: np.ndarray, path: Path) -> None:
    """What the model saw, as a grayscale PNG of the input's own size."""
    Image.fromarray(np.round(array * 255).astype(np.uint8), mode="L").save(path)
