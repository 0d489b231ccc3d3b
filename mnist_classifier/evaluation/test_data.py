"""The test rows a model file is judged on: its dataset, through its own preprocessing record."""

from __future__ import annotations

from dataclasses import replace

import torch

from ..data.dataset import Dataset, data_change, fingerprint, user_data
from ..data.datasets import load_dataset
from ..data.preprocessing import PHOTO
from ..errors import UserError
from ..training.config import TrainConfig, source_options


def other_folder(saved: dict, name: str, data_dir: str | None = None) -> Dataset:
    """Another folder's pictures, to judge a folder model on: its ``test/`` split, or every picture;
    prepared by the model's own record, its class folders matched to the model's classes by name."""
    record, classes = saved["preprocessing"], saved["dataset"].get("classes")
    if (user_data(name) or ("",))[0] != "folder" or record.get("kind") != PHOTO:
        raise UserError(f"--dataset {name}: another dataset can be given only as folder:PATH, for a model trained "
                        "on a folder of pictures")
    config = TrainConfig.from_dict(saved.get("config") or {})
    channels, side, _ = record["shape"]
    raw = load_dataset(name, data_dir or config.data_dir, image_size=side, resize=record["resize"], channels=channels,
                       holdout=True)
    unknown = [c for c in raw.classes if c not in classes]
    if unknown:
        raise UserError(f"--dataset {name}: the class folder {unknown[0]!r} is not one of the model's classes "
                        f"({', '.join(classes)})")
    to_model = torch.tensor([classes.index(c) for c in raw.classes], dtype=torch.long)
    x, y = raw.test
    return replace(raw.prepared(record), test=(x, to_model[y]), classes=classes)


def prepared_dataset(saved: dict, data_dir: str | None = None) -> Dataset:
    """The dataset the model file was trained on, as model input.

    The record saved in the file is applied, never a new fit, so the rows go through exactly what
    training used (the same standardisation statistics, the same image shape).
    """
    config = TrainConfig.from_dict(saved.get("config") or {})
    if config.dataset == "estimator":
        raise UserError("this model was trained from Python (Classifier or Regressor .fit): there is no dataset "
                        "to reload; judge it with its .score() on your test rows")
    record = saved["preprocessing"]
    # A folder is read at the model's own shape: a colour picture added since cannot change its channels.
    pinned = {"image_size": record["shape"][1], "channels": record["shape"][0]} if record.get("kind") == PHOTO else {}
    raw = load_dataset(config.dataset, data_dir or config.data_dir, **{**source_options(config), **pinned})
    dataset = raw.prepared(record)
    then = saved.get("data")  # the training rows' fingerprint, in files from this release on
    change = data_change(then, fingerprint(dataset)) if isinstance(then, dict) else None
    if change is None and saved.get("dataset", {}).get("classes") not in (None, dataset.classes):
        change = f"its classes were {saved['dataset']['classes']}, now {dataset.classes}"
    if change:
        raise UserError(f"{dataset.name}: the data changed since the model was trained ({change}); its test rows "
                        "would not be the ones the model was judged on")
    return dataset
