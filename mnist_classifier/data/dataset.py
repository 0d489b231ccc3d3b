"""The one form every data source is loaded into: a ``Dataset`` of raw train and test tensors."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field, replace

import torch

from ..kinds.base import CLASSIFICATION, DIGIT, REGRESSION

Data = tuple[torch.Tensor, torch.Tensor]
TEST_RATIO = 0.2  # for datasets that come without a test split
SPLIT_SEED = 0  # so the same file always gives the same test split

__all__ = ["CLASSIFICATION", "REGRESSION", "Data", "Dataset", "split_test"]


@dataclass
class Dataset:
    """Train and test tensors as the source gave them, and what inference needs later.

    ``x`` is images as float32 (N, C, H, W) in [0, 1], or table rows as a pandas DataFrame of raw
    columns (numbers as float64, text as stripped strings). A folder's pictures stay uint8 (N, C, H,
    W), in memory or read from disk (``image_cache.FileRows``): the trainer makes floats of one
    batch at a time. ``y`` is int64 class indices for classification, float32 (N, 1) for
    regression. Once ``prepared``, both are model input.
    """

    name: str
    train: Data
    test: Data
    task: str
    input_shape: tuple[int, ...]  # (1, 28, 28) for MNIST; (columns,) for raw tables, (inputs,) once prepared
    classes: list[str] | None = None  # None for regression
    feature_names: list[str] | None = None
    image_style: str = DIGIT  # how people's own images are prepared for this data
    preprocessing: dict | None = None  # the record the tensors went through, once prepared
    fixed_record: dict | None = None  # a source that prepared its rows already (a folder's cache) sets it
    valid: Data | None = None  # a source's own validation split (PATH/valid); else train_ratio splits train
    found: str | None = None  # what the source found, in a line (a folder's classes, sizes, skipped files)
    notes: list[str] = field(default_factory=list)  # a line per file or folder skipped
    skipped: int = 0  # files that could not be read, saved in the model file
    na_values: list[str] = field(default_factory=list)  # a table's words for a gap besides the usual (--na_values)
    decimal: str = "."  # a table's decimal mark: files read later that do not show theirs are read with it
    kind: type | None = None  # its kind (``kinds.Kind``), set by ``kinds.load_dataset``: it fits the record

    @property
    def input_size(self) -> int:
        return math.prod(self.input_shape)

    @property
    def output_size(self) -> int:
        return len(self.classes) if self.task == CLASSIFICATION else 1

    def __len__(self) -> int:
        """The number of training rows."""
        return len(self.train[1])

    def fit_preprocessing(self, rows: torch.Tensor | None = None) -> dict:
        """The preprocessing record, fitted on the training rows (only ``rows`` of them when given:
        the validation rows must not shape what the model is judged on)."""
        self._check_kind()
        return self.kind.fit_dataset(self, rows).to_dict()

    def prepared(self, record: dict | None = None) -> Dataset:
        """The same data as model input: ``record`` (fitted here when None) applied to train and test."""
        self._check_kind()
        record = record or self.fit_preprocessing()
        fitted = self.kind.from_dict(record)
        parts = {"training": self.train, "test": self.test, **({"validation": self.valid} if self.valid else {})}
        prepared = {part: (fitted.prepare_rows(x, f"{self.name} ({part} rows)"), fitted.to_target(y))
                    for part, (x, y) in parts.items()}
        return replace(self, train=prepared["training"], test=prepared["test"], valid=prepared.get("validation"),
                       preprocessing=record, input_shape=fitted.input_shape)

    def _check_kind(self) -> None:
        if self.kind is None:  # a bug in the caller: no user can cause it
            raise TypeError(f"{self.name}: a Dataset needs its kind (a class of mnist_classifier.kinds) to fit and "
                            "apply its record; kinds.load_dataset sets it")

    def metadata(self) -> dict:
        """Plain values for the model file: what the data was and what its classes are called."""
        values = {
            "name": self.name,
            "task": self.task,
            "classes": self.classes,
            "feature_names": self.feature_names,
        }
        return {**values, "skipped_files": self.skipped} if self.fixed_record is not None else values


def fingerprint(dataset: Dataset) -> dict:
    """What the training rows are, in a few plain values: a changed value, shape or class shows."""
    x, y = dataset.train
    digest = hashlib.blake2b(digest_size=16)
    for tensor in (x, y):
        if hasattr(tensor, "update_digest"):  # a cache read from disk: block by block, same digest
            tensor.update_digest(digest)
        else:
            digest.update(tensor.detach().cpu().contiguous().numpy())
    return {"rows": len(x), "shape": list(x.shape[1:]), "classes": dataset.classes, "digest": digest.hexdigest()}


def data_change(then: dict, now: dict) -> str | None:
    """What differs between two fingerprints, in words; None when they agree."""
    if (then.get("rows"), then.get("shape")) != (now["rows"], now["shape"]):
        return (f"it had {then.get('rows')} training rows of shape {then.get('shape')}, now {now['rows']} of shape "
                f"{now['shape']}")
    if then.get("classes") != now["classes"]:
        return f"its classes were {then.get('classes')}, now {now['classes']}"
    if then.get("digest") != now["digest"]:
        return "the same number of rows, but their values changed"
    return None


def model_input(batch: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A batch on ``device`` as the model takes it: a picture cache's uint8 pixels become floats in
    [0, 1] here, one batch at a time (the cache itself stays a quarter of float32's size)."""
    batch = batch.to(device, non_blocking=True)
    return batch.float().div_(255) if batch.dtype == torch.uint8 else batch


def take_rows(x, rows: torch.Tensor):
    """Some rows of ``x``: a copy for tensors, a view for a cache read from disk (never read whole)."""
    return x.subset(rows) if hasattr(x, "subset") else x[rows]


def split_test(x: torch.Tensor, y: torch.Tensor, stratify: bool = False) -> tuple[Data, Data]:
    """A fixed, seeded train/test split for data that ships without one."""
    from sklearn.model_selection import train_test_split

    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=TEST_RATIO, random_state=SPLIT_SEED, stratify=y if stratify else None
    )
    return (x_train, y_train), (x_test, y_test)
