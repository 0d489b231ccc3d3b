"""Small folders of pictures made by the tests: each class a colour of a square on a noisy background."""

from pathlib import Path

import numpy as np
from PIL import Image

COLOURS = {"cat": (210, 50, 40), "dog": (40, 60, 210), "owl": (50, 200, 60)}
FORMATS = ("png", "jpg", "webp", "bmp", "gif", "tiff")


def picture(colour, size: tuple[int, int], rng: np.random.Generator, gray: bool = False) -> Image.Image:
    width, height = size
    pixels = rng.integers(0, 70, (height, width, 3)).astype(np.uint8)
    pixels[height // 4: 3 * height // 4, width // 4: 3 * width // 4] = colour
    image = Image.fromarray(pixels)
    return image.convert("L") if gray else image


def make_folder(root: Path, per_class: int = 12, classes=("cat", "dog", "owl"), formats=FORMATS,
                sizes=((24, 24), (40, 30), (30, 52)), gray: bool = False, seed: int = 0) -> Path:
    """``root/CLASS/N.FORMAT``: ``per_class`` pictures of each class, formats and sizes in turn."""
    rng = np.random.default_rng(seed)
    for name in classes:
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            image = picture(COLOURS[name], sizes[i % len(sizes)], rng, gray)
            image.save(folder / f"{i}.{formats[i % len(formats)]}")
    return root
