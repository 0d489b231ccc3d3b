"""Small data the tests make themselves: a fake MNIST in the official IDX layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mnist_classifier.data import IMAGES_MAGIC, LABELS_MAGIC, write_idx


def learnable_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """28x28 uint8 images whose label decides where a bright square sits, over faint noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, size=n).astype(np.uint8)
    images = rng.integers(0, 60, size=(n, 28, 28)).astype(np.uint8)
    for i, label in enumerate(labels):
        row, col = divmod(int(label), 5)
        images[i, 4 + row * 12 : 10 + row * 12, 2 + col * 5 : 7 + col * 5] = 255
    return images, labels


def write_fake_mnist(data_dir: Path, n_train: int = 600, n_test: int = 200) -> Path:
    raw = data_dir / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, n, seed in (("train", n_train, 0), ("t10k", n_test, 1)):
        images, labels = learnable_digits(n, seed)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images, IMAGES_MAGIC)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels, LABELS_MAGIC)
    return data_dir


@pytest.fixture
def fake_mnist(tmp_path: Path) -> Path:
    """A data folder holding a small, learnable MNIST look-alike; no download is attempted."""
    return write_fake_mnist(tmp_path / "data")
