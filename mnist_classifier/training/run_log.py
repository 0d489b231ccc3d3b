"""Runs leave their metrics: beside ``model.pth``, ``model.history.csv`` (a row per epoch, rewritten
after each one, so a killed run keeps what it measured) and ``model.config.json`` (the configuration
the run used). Both open in a spreadsheet, pandas or a text editor; the model file keeps its own copy
of the history for ``mnist-evaluate``.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from ..files import atomic_write
from .callbacks import Callback

HISTORY_COLUMNS = ("epoch", "train_loss", "valid_loss", "valid_accuracy", "lr", "seconds")
CONFIG_FORMAT = "mnist_classifier.run_config/1"


def companion_paths(model_fn: str | Path) -> dict[str, Path]:
    """Where a run writes its history and configuration: ``m.pth`` -> ``m.history.csv``, ``m.config.json``."""
    path = Path(model_fn)
    stem = path.name[: -len(path.suffix)] if path.suffix else path.name
    return {"history": path.with_name(f"{stem}.history.csv"), "config": path.with_name(f"{stem}.config.json")}


def write_history(path: Path, history: list[dict]) -> None:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=HISTORY_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)  # a column a task does not have (accuracy in regression) stays empty
    atomic_write(path, lambda f: f.write(text.getvalue().encode()))


def write_config(path: Path, config: dict) -> None:
    text = json.dumps({"format": CONFIG_FORMAT, **config}, indent=2, sort_keys=True) + "\n"
    atomic_write(path, lambda f: f.write(text.encode()))


def is_our_history(path: Path) -> bool:
    """Whether ``path`` starts as the history CSVs this package writes (so it may be replaced)."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.readline().rstrip("\n") == ",".join(HISTORY_COLUMNS)
    except (OSError, UnicodeDecodeError):
        return False


def is_our_config(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8") as f:
            values = json.load(f)
    except (OSError, ValueError):
        return False
    return isinstance(values, dict) and values.get("format") == CONFIG_FORMAT


class RunLog(Callback):
    """Writes the configuration when training starts and the whole history after every epoch.
    ``config`` is read when training starts, once the seed and precision are settled."""

    def __init__(self, model_fn: str | Path, config):
        self.paths = companion_paths(model_fn)
        self.config = config

    def on_train_start(self, trainer) -> None:
        write_config(self.paths["config"], self.config.to_dict())

    def on_epoch_end(self, trainer, record: dict) -> None:
        write_history(self.paths["history"], trainer.history)
