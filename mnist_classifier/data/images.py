"""People's own images turned into model input the way the data set itself was made.

MNIST digits are light on a dark background, cropped to their bounding box, scaled to fit a
20x20 box with their aspect ratio kept, and pasted into 28x28 so that their centre of mass sits
at the centre. Doing the same to a photo or a drawing is what makes the model's accuracy carry
over to it.
"""

from __future__ import annotations

import os
import stat
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import UserError
from ..files import atomic_write
from .pictures import eight_bit

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
INK_THRESHOLD = 0.2  # pixels above this share of the brightest one count as the digit
# Larger images are shrunk to this long side as soon as they are decoded (JPEGs while decoding):
# far more than 28x28 needs, and it keeps a 170-megapixel photo from costing gigabytes.
WORKING_SIDE = 1024


def _decoded(source, working_side: int = WORKING_SIDE) -> Image.Image:
    """The image at ``source``, decoded (JPEGs at a reduced scale when large), then shrunk."""
    image = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # handled: shrunk below
            image = Image.open(source)
            image.draft(image.mode, (working_side, working_side))  # JPEG: decode at a fraction of the size
            image.load()
    except BaseException:
        if image is not None:
            image.close()  # else the error keeps the file open: a folder of bad files would run out of them
        raise
    return shrunk(image, working_side)


def open_image(source, working_side: int = WORKING_SIDE) -> Image.Image:
    """Open a path or a binary stream as an image, with a clear error for anything else.

    Only regular files are read (a FIFO would block forever); a decompression bomb is refused;
    a very large image comes back already shrunk (see ``WORKING_SIDE``).
    """
    name = getattr(source, "name", source)
    if isinstance(source, (str, Path)):
        _check_regular_file(Path(source))
    try:
        return _decoded(source, working_side)
    except Image.DecompressionBombError:
        raise UserError(f"{name}: refused, too many pixels to decode safely (more than "
                        f"{2 * Image.MAX_IMAGE_PIXELS:,}); a decompression bomb?") from None
    except (UnidentifiedImageError, OSError) as e:
        raise UserError(f"{name}: not an image this program can read ({e.__class__.__name__})") from None


def _check_regular_file(path: Path) -> None:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except OSError as e:
        raise UserError(f"{path}: cannot be read ({e.strerror})") from None
    if not stat.S_ISREG(mode):
        raise UserError(f"{path}: not a regular file (a folder, FIFO or device); give an image file")


# Modes Pillow cannot reduce, and the mode each is reduced in without losing what it shows.
REDUCIBLE_AS = {"1": "L", "P": "RGBA", "PA": "RGBA"}


def shrunk(image: Image.Image, working_side: int = WORKING_SIDE) -> Image.Image:
    factor = max(image.size) // working_side
    if factor < 2:
        return image
    if image.mode in REDUCIBLE_AS:
        image = image.convert(REDUCIBLE_AS[image.mode])
    return eight_bit(image).reduce(factor)  # 16-bit pictures on their own range first, as small ones are


def image_files(paths: list[str]) -> list[Path]:
    """Expand folders into the images they hold, in name order; keep files as given."""
    found = []
    for path in map(Path, paths):
        try:
            is_dir = path.is_dir()
        except OSError:
            is_dir = False  # e.g. a name too long: reported when the file is read, like any other
        if is_dir:
            images = _images_under(path)
            if not images:
                raise UserError(f"{path}: the folder holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
            found.extend(images)
        else:
            found.append(path)
    return found


def _images_under(folder: Path) -> list[Path]:
    """The images in a folder and its subfolders, as training reads a class folder: hidden names left
    out, links followed, a folder reached twice (a link loop) read once."""
    images, seen = [], set()
    for current, folders, files in os.walk(folder, followlinks=True):
        status = os.stat(current)
        if (status.st_dev, status.st_ino) in seen:
            folders.clear()
            continue
        seen.add((status.st_dev, status.st_ino))
        folders[:] = [name for name in folders if not name.startswith(".")]
        images += [Path(current, name) for name in files
                   if not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES]
    return sorted(images)


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
    gray = grayscale(shrunk(ImageOps.exif_transpose(image)), name)
    if _border_mean(gray) > 0.5:
        gray = 1.0 - gray  # dark ink on light paper: invert to MNIST's light-on-dark
    gray = np.clip(gray - _border_mean(gray), 0, 1)  # a grey background becomes black
    if gray.max() < 0.05:
        raise UserError(f"{name}: the image is empty (nothing stands out from the background)")
    ink = gray >= INK_THRESHOLD * gray.max()
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    return gray[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def grayscale(image: Image.Image, name: str = "image") -> np.ndarray:
    """The image as float32 brightness in [0, 1]: transparency composited, float and 16-bit images scaled."""
    if 0 in image.size:
        raise UserError(f"{name}: the image has no pixels ({image.width}x{image.height})")
    if image.mode in ("F", "I", "I;16", "I;16B", "I;16L", "I;16N"):
        values = np.nan_to_num(np.asarray(image, dtype=np.float32), posinf=0.0, neginf=0.0)
        if image.mode.startswith("I;16"):
            top = 65535.0
        else:  # floats in [0, 1] stay; larger ranges are read as 8-bit or scaled by their maximum
            top = 1.0 if values.max() <= 1.0 else 255.0 if values.max() <= 255.0 else float(values.max())
        return np.clip(values / top, 0, 1)
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        return _composited(image.convert("LA"))
    return np.asarray(image.convert("L"), dtype=np.float32) / 255.0


def _composited(image: Image.Image) -> np.ndarray:
    # Ink drawn on a transparent background: lay it on paper that contrasts with the ink's own colour
    # (transparent pixels often hold black, which would hide black ink).
    values = np.asarray(image, dtype=np.float32) / 255.0
    gray, alpha = values[..., 0], values[..., 1]
    opaque = alpha > 0.5
    paper = 1.0 if opaque.any() and gray[opaque].mean() < 0.5 else 0.0
    return gray * alpha + paper * (1.0 - alpha)


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
    """What the model saw, as a PNG of the input's own size: grayscale (H, W) or colour (H, W, 3)."""
    image = Image.fromarray(np.round(array * 255).astype(np.uint8), mode="L" if array.ndim == 2 else "RGB")
    atomic_write(path, lambda f: image.save(f, format="PNG"))
