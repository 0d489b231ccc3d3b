"""The datasets ``--dataset`` can name, each loaded into the same form: a ``Dataset``.

Swapping the data source is all it takes to train the same model and trainer on another
problem: a loader returns train and test tensors plus what inference needs later (class names,
input shape, task, standardisation statistics). Adding a dataset is adding one function to
``LOADERS``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .data import load_fashion_mnist, load_mnist
from .errors import UserError

Data = tuple[torch.Tensor, torch.Tensor]
CLASSIFICATION, REGRESSION = "classification", "regression"
TEST_RATIO = 0.2  # for datasets that come without a test split
SPLIT_SEED = 0  # so the same file always gives the same test split


@dataclass
class Dataset:
    """Train and test tensors and what inference needs: ``x`` float32 (N, features); ``y`` int64
    class indices for classification, float32 (N, 1) for regression."""

    name: str
    train: Data
    test: Data
    task: str
    input_shape: tuple[int, ...]  # (28, 28) for images, (features,) for tables
    classes: list[str] | None = None  # None for regression
    feature_names: list[str] | None = None
    # Tables are standardised with the training split's statistics: x' = (x - mean) / std.
    x_mean: list[float] | None = None
    x_std: list[float] | None = None
    # Regression targets are standardised too, so one learning rate suits any unit; metrics undo it.
    y_mean: float = 0.0
    y_std: float = 1.0

    @property
    def input_size(self) -> int:
        return int(np.prod(self.input_shape))

    @property
    def output_size(self) -> int:
        return len(self.classes) if self.task == CLASSIFICATION else 1

    def metadata(self) -> dict:
        """Plain values for the model file: enough to accept raw input at inference time."""
        return {
            "name": self.name,
            "task": self.task,
            "input_shape": list(self.input_shape),
            "classes": self.classes,
            "feature_names": self.feature_names,
            "x_mean": self.x_mean,
            "x_std": self.x_std,
            "y_mean": self.y_mean,
            "y_std": self.y_std,
        }


def image_dataset(name: str, load: Callable, data_dir: str, classes: list[str]) -> Dataset:
    train = load(is_train=True, data_dir=data_dir)
    test = load(is_train=False, data_dir=data_dir)
    return Dataset(name, train, test, CLASSIFICATION, (28, 28), classes)


def mnist(data_dir: str, **_) -> Dataset:
    return image_dataset("mnist", load_mnist, data_dir, [str(d) for d in range(10)])


FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def fashion_mnist(data_dir: str, **_) -> Dataset:
    return image_dataset("fashion-mnist", load_fashion_mnist, data_dir, FASHION_CLASSES)


def digits(**_) -> Dataset:
    """scikit-learn's bundled 8x8 digits (1,797 images): needs no download at all."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.from_numpy(bunch.data / 16.0).float()  # pixel values are 0..16
    y = torch.from_numpy(bunch.target).long()
    train, test = split_test(x, y, stratify=True)
    return Dataset("digits", train, test, CLASSIFICATION, (8, 8), [str(d) for d in range(10)])


def diabetes(**_) -> Dataset:
    """scikit-learn's bundled diabetes regression data (442 patients, 10 features)."""
    from sklearn.datasets import load_diabetes

    bunch = load_diabetes(scaled=False)
    x = torch.from_numpy(bunch.data).float()
    y = torch.from_numpy(bunch.target).float().unsqueeze(1)
    train, test = split_test(x, y)
    return standardise(Dataset("diabetes", train, test, REGRESSION, (x.size(1),),
                               feature_names=list(bunch.feature_names)))


def split_test(x: torch.Tensor, y: torch.Tensor, stratify: bool = False) -> tuple[Data, Data]:
    """A fixed, seeded train/test split for data that ships without one."""
    from sklearn.model_selection import train_test_split

    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=TEST_RATIO, random_state=SPLIT_SEED, stratify=y if stratify else None
    )
    return (x_train, y_train), (x_test, y_test)


def standardise(dataset: Dataset) -> Dataset:
    """Scale features (and regression targets) with the training split's statistics only."""
    (x_train, y_train), (x_test, y_test) = dataset.train, dataset.test
    x_mean, x_std = x_train.mean(dim=0), x_train.std(dim=0).clamp_min(1e-8)
    dataset.x_mean, dataset.x_std = x_mean.tolist(), x_std.tolist()
    x_train, x_test = (x_train - x_mean) / x_std, (x_test - x_mean) / x_std
    if dataset.task == REGRESSION:
        dataset.y_mean, dataset.y_std = y_train.mean().item(), max(y_train.std().item(), 1e-8)
        y_train = (y_train - dataset.y_mean) / dataset.y_std
        y_test = (y_test - dataset.y_mean) / dataset.y_std
    dataset.train, dataset.test = (x_train, y_train), (x_test, y_test)
    return dataset


LOADERS: dict[str, Callable[..., Dataset]] = {
    "mnist": mnist,
    "fashion-mnist": fashion_mnist,
    "digits": digits,
    "diabetes": diabetes,
}


def load_dataset(name: str, data_dir: str = "data", **options) -> Dataset:
    """``name`` is a key of ``LOADERS`` or ``csv:PATH``; ``options`` go to the CSV reader."""
    if name.startswith("csv:"):
        from .csv_data import load_csv

        return standardise(load_csv(Path(name[4:]), **options))
    if name not in LOADERS:
        raise UserError(f"--dataset {name!r}: unknown; choose one of {', '.join(LOADERS)} or csv:PATH")
    return LOADERS[name](data_dir=data_dir)
