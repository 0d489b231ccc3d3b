"""The built-in datasets ``--dataset`` can name, each loaded into the same form: a ``Dataset``.

Swapping the data source is all it takes to train the same model and trainer on another
problem: a loader returns raw train and test tensors in their natural shape plus what inference
needs later (class names, input shape, task, how people's pictures are prepared).
``Dataset.prepared()`` then fits the preprocessing record on the training rows. Adding a dataset
is one function in ``LOADERS`` and its name among its kind's ``builtins`` (``kinds/``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .dataset import CLASSIFICATION, REGRESSION, Dataset, split_test
from .mnist import FASHION_CLASSES, fashion_mnist, mnist

__all__ = ["CLASSIFICATION", "FASHION_CLASSES", "LOADERS", "REGRESSION", "Dataset"]


def digits(**_) -> Dataset:
    """scikit-learn's bundled 8x8 digits (1,797 images): needs no download at all."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.from_numpy(bunch.data / 16.0).float().view(-1, 1, 8, 8)  # pixel values are 0..16
    y = torch.from_numpy(bunch.target).long()
    train, test = split_test(x, y, stratify=True)
    return Dataset("digits", train, test, CLASSIFICATION, (1, 8, 8), [str(d) for d in range(10)])


def diabetes(**_) -> Dataset:
    """scikit-learn's bundled diabetes regression data (442 patients, 10 features)."""
    from sklearn.datasets import load_diabetes

    bunch = load_diabetes(scaled=False, as_frame=True)
    y = torch.tensor(bunch.target.to_numpy(), dtype=torch.float32).unsqueeze(1)
    train, test = split_test(bunch.data.astype("float64"), y)
    names = list(bunch.feature_names)
    return Dataset("diabetes", train, test, REGRESSION, (len(names),), feature_names=names)


LOADERS: dict[str, Callable[..., Dataset]] = {
    "mnist": mnist,
    "fashion-mnist": fashion_mnist,
    "digits": digits,
    "diabetes": diabetes,
}

