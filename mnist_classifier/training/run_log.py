"""Runs leave their metrics: beside ``model.pth``, ``model.pth.history.csv`` (a row per epoch,
rewritten after each one, so a killed run keeps what it measured) and ``model.pth.config.json`` (the
configuration the run used). Both open in a spreadsheet, pandas or a text editor; the model file keeps
its own copy of the history for ``mnist-evaluate``. They are side files: when one cannot be written,
the run says so once and trains on.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Callable
from pathlib import Path

from ..errors import SaveFailed, UserError
from ..files import atomic_write, companion_paths, probe_writable
from .callbacks import Callback

HISTORY_COLUMNS = ("epoch", "train_loss", "valid_loss", "valid_accuracy", "lr", "seconds")
CONFIG_FORMAT = "mnist_classifier.run_config/1"


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
            return f.readline(4096).rstrip("\n") == ",".join(HISTORY_COLUMNS)
    except (OSError, UnicodeDecodeError):
        return False


def is_our_config(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8") as f:
            values = json.loads(f.read(1 << 20))  # ours are a few kB; a huge file is not
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(values, dict) and values.get("format") == CONFIG_FORMAT


class RunLog(Callback):
    """Writes the whole history after every epoch, and the configuration with the first epoch's row
    (a run that completes no epoch leaves earlier files as they were). ``record()`` gives the saved
    configuration then, once the run's facts (its precision) are settled."""

    def __init__(self, model_fn: str | Path, record: Callable[[], dict]):
        self.paths = companion_paths(model_fn)
        self.record = record
        self.config_written = self.failed = False

    def on_epoch_end(self, trainer, record: dict) -> None:
        if self.failed:
            return
        try:
            if not self.config_written:
                write_config(self.paths["config"], self.record())
                self.config_written = True
            write_history(self.paths["history"], trainer.history)
        except SaveFailed as e:  # a full disk: the model file still gets the history; say it once
            self.failed = True
            print(f"warning: {e}; training goes on (the model file keeps the history)",
                  file=sys.stderr, flush=True)


class TensorBoardLog(Callback):
    """Per-epoch scalars (losses, validation accuracy, learning rate) and the configuration as
    TensorBoard event files in ``log_dir`` (``--tensorboard DIR``; needs the tensorboard package);
    ``record()`` gives the configuration, as ``RunLog``'s."""

    SCALARS = ("train_loss", "valid_loss", "valid_accuracy", "lr")

    def __init__(self, log_dir: str | Path, record: Callable[[], dict]):
        self.writer = open_tensorboard(log_dir)
        self.record = record
        self.config_written = False

    def on_epoch_end(self, trainer, record: dict) -> None:
        if not self.config_written:  # once the seed and precision are settled
            self.writer.add_text("config", "    " + json.dumps(self.record(), indent=2, sort_keys=True)

                                 .replace("\n", "\n    "), record["epoch"])  # indented: shown as code
            self.config_written = True
        for name in self.SCALARS:
            if record.get(name) is not None:
                self.writer.add_scalar(name, record[name], record["epoch"])
        self.writer.flush()

    def on_train_end(self, trainer) -> None:
        self.writer.close()


def open_tensorboard(log_dir: str | Path):
    """A SummaryWriter into ``log_dir``, or one line saying what is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise UserError("--tensorboard needs the tensorboard package: pip install tensorboard (or the project's "
                        "[tensorboard] extra)") from None
    path = Path(log_dir)
    if path.exists() and not path.is_dir():
        raise UserError(f"--tensorboard {log_dir}: not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        # The writer opens its event file on a thread of its own, whose failure would print a
        # traceback before any line of ours: try the folder here first.
        probe_writable(path)
        return SummaryWriter(log_dir=str(path))
    except OSError as e:
        raise UserError(f"--tensorboard {log_dir}: cannot write there ({e.strerror})") from e
