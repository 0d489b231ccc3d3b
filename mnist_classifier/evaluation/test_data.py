"""The test rows a model file is judged on: its dataset, through its own preprocessing record."""

from __future__ import annotations

from ..data.dataset import Dataset, data_change, fingerprint
from ..errors import UserError
from ..kinds import as_record, load_dataset
from ..training.config import TrainConfig, source_options


def other_folder(saved: dict, name: str, data_dir: str | None = None) -> Dataset:
    """Another source's test rows to judge a model file on (a folder model: another folder's
    pictures), prepared by the model's own record; refused by the kinds that have no such thing."""
    config = TrainConfig.from_dict(saved.get("config") or {})
    return as_record(saved["preprocessing"]).other_test_data(saved, name, data_dir or config.data_dir)


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
    pinned = as_record(record).reread_options()  # read at the model's own shape (a folder's side and channels)
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
