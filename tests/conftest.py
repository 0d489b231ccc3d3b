"""Small data the tests make themselves: a fake MNIST in the official IDX layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mnist_classifier.data.mnist import IMAGES_MAGIC, LABELS_MAGIC, write_idx, write_md5sums


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
    write_md5sums(raw)  # a set of our own: loads check it against these checksums, not MNIST's published ones
    return data_dir


def pretend_official(data_dir: Path, monkeypatch) -> Path:
    """Treat the fake set as the official MNIST: its checksums become the "published" ones."""
    from mnist_classifier.data import mnist
    from mnist_classifier.data.mnist import read_md5sums

    manifest = data_dir / "MNIST" / "raw" / "MD5SUMS"
    monkeypatch.setattr(mnist, "IDX_MD5", read_md5sums(manifest))
    manifest.unlink()
    return data_dir


@pytest.fixture(autouse=True)
def seeded_generators():
    """Every test starts from the same random state, whatever ran before it."""
    import random

    import torch

    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def fp32_where_auto_would_probe(monkeypatch):
    """``--amp auto`` keeps float32 on every CPU in the tests: on one with bf16 kernels a timed probe
    would choose, and a timing must not decide whether two runs are bit-identical. Tests of the
    choice itself (test_precision.py) set the hardware's answer they need."""
    from mnist_classifier.training import precision

    monkeypatch.setattr(precision, "cpu_has_bf16_kernels", lambda: False)


@pytest.fixture
def fake_mnist(tmp_path: Path) -> Path:
    """A data folder holding a small, learnable MNIST look-alike; no download is attempted."""
    return write_fake_mnist(tmp_path / "data")


def render_digit(digit: int, font_size: int, at: tuple[int, int], size=(90, 80), light_background=True):
    from PIL import Image, ImageDraw, ImageFont

    paper, ink = (235, 25) if light_background else (15, 240)
    image = Image.new("L", size, paper)
    ImageDraw.Draw(image).text(at, str(digit), font=ImageFont.load_default(size=font_size), fill=ink)
    return image


@pytest.fixture(scope="session")
def digit_model(tmp_path_factory) -> Path:
    """A small model trained on Pillow-rendered digits made MNIST-like: it knows real digit shapes."""
    import torch

    from mnist_classifier.data.images import mnist_like

    images, labels = [], []
    for digit in range(10):
        for font_size in (30, 38, 46, 54):
            for at in ((4, 2), (30, 20)):
                images.append(mnist_like(render_digit(digit, font_size, at)))
                labels.append(digit)
    x = torch.from_numpy(np.stack(images)).view(len(images), 1, 28, 28)
    return small_digit_model_file(x, torch.tensor(labels), tmp_path_factory.mktemp("model") / "digits.pth", steps=60)


@pytest.fixture(scope="module")
def client(digit_model):
    """The web server's app on ``digit_model``, PyTorch answering (no export), for the server tests."""
    from fastapi.testclient import TestClient

    from mnist_classifier.inference import server

    return TestClient(server.create_app(digit_model, use_export=False))


def small_digit_model_file(x, y, path: Path, steps: int) -> Path:
    """A 784-64-10 MLP fitted to MNIST-like pictures ``x`` (N, 1, 28, 28) and digits ``y`` by full-batch
    Adam, saved as an ordinary model file for MNIST's ten classes."""
    import torch

    from mnist_classifier.data.preprocessing import image_record
    from mnist_classifier.inference.model_file import MNIST_METADATA, save_model_file
    from mnist_classifier.models.mlp import ImageClassifier

    torch.manual_seed(0)
    model = ImageClassifier(784, 10, [64])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        loss = torch.nn.functional.nll_loss(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    save_model_file(path, model.eval(), optimizer, {}, image_record((1, 28, 28)), history=[],
                    dataset=MNIST_METADATA)
    return path


def signal_after_epoch(monkeypatch, epoch: int, signum) -> None:
    """Make ``mnist-train`` receive a real ``signum`` at the end of ``epoch`` (until the test ends)."""
    import signal

    from mnist_classifier.cli import train_run as train_cli
    from mnist_classifier.training.callbacks import Callback

    make_callbacks = train_cli.make_callbacks

    class SignalAfterEpoch(Callback):
        def on_epoch_end(self, trainer, record):
            if record["epoch"] == epoch:
                signal.raise_signal(signum)

    monkeypatch.setattr(train_cli, "make_callbacks", lambda *args: [SignalAfterEpoch(), *make_callbacks(*args)])


def beside(model_fn, what: str):
    """The file a run keeps beside ``model_fn``: "history", "config" or "checkpoint" (named in files.py)."""
    from mnist_classifier.files import companion_paths

    return companion_paths(model_fn)[what]
