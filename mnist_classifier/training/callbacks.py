"""What happens around the training loop, each concern a small callback the ``Trainer`` calls.

A callback overrides any of the events below; the trainer passes itself, so a callback can read
the history or best epoch, ask for a stop (``trainer.should_stop = True`` ends the run after the
epoch, ``trainer.request_stop(reason)`` interrupts it after the batch) or save files. A new
concern is a new callback, not an edit of the loop.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable

import torch
from tqdm import tqdm

# The bar's running loss needs a device sync; every 20 batches keeps that cost negligible.
BAR_REFRESH_STEPS = 20


class Callback:
    """The events of a run, in order; a callback overrides those it needs. ``state_dict`` is saved in
    checkpoints (non-empty ones only) and handed back to ``load_state_dict`` on resume."""

    def on_train_start(self, trainer) -> None: ...
    def on_epoch_start(self, trainer, epoch: int, n_batches: int) -> None: ...
    # After backward, before the update: the gradients are there (and, distributed, averaged).
    def on_before_optimizer_step(self, trainer) -> None: ...
    def on_batch_end(self, trainer, step: int) -> None: ...
    def on_epoch_end(self, trainer, record: dict) -> None: ...
    def on_exception(self, trainer, error: BaseException) -> None: ...  # then it is raised on
    def on_train_end(self, trainer) -> None: ...  # always called, also when training raised
    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None: ...


def from_config(config, verbose: bool = True) -> list[Callback]:
    """The callbacks a training configuration asks for (``TrainConfig``, or anything with its
    fields), whoever trains: ``mnist-train`` and the estimators alike."""
    callbacks: list[Callback] = []
    if config.grad_clip:
        callbacks.append(GradientClipping(config.grad_clip))
    if config.patience:
        callbacks.append(EarlyStopping(config.patience, verbose=verbose))
    return callbacks


def printers() -> list[Callback]:
    """What a verbose trainer shows: a progress bar over the batches and the seed's line per epoch."""
    return [ProgressBar(), EpochPrinter()]


class GradientClipping(Callback):
    """Scale the gradients down where their total norm exceeds ``max_norm`` (``--grad_clip``)."""

    def __init__(self, max_norm: float):
        self.max_norm = max_norm

    def on_before_optimizer_step(self, trainer) -> None:
        torch.nn.utils.clip_grad_norm_(trainer.model.parameters(), self.max_norm)


class ProgressBar(Callback):
    """A bar over each epoch's batches with the running loss, only on a terminal (logs stay clean)."""

    def __init__(self):
        self.bar: tqdm | None = None

    def on_epoch_start(self, trainer, epoch: int, n_batches: int) -> None:
        self.bar = tqdm(total=n_batches, desc=f"Epoch {epoch}/{trainer.n_epochs}", unit="batch", leave=False,
                        disable=None)

    def on_batch_end(self, trainer, step: int) -> None:
        self.bar.update()
        if not self.bar.disable and step % BAR_REFRESH_STEPS == 0:
            self.bar.set_postfix(loss=f"{trainer.running_loss():.4f}", refresh=False)

    def on_epoch_end(self, trainer, record: dict) -> None:
        self._close()

    def on_train_end(self, trainer) -> None:
        self._close()

    def _close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class EpochPrinter(Callback):
    """The seed's line per epoch: losses, accuracy, the lowest validation loss, seconds."""

    def on_epoch_end(self, trainer, record: dict) -> None:
        text = (f"Epoch({record['epoch']}/{trainer.n_epochs}): train_loss={record['train_loss']:.4e}"
                f"  valid_loss={record['valid_loss']:.4e}")
        if "valid_accuracy" in record:
            text += f"  valid_accuracy={record['valid_accuracy']:.4f}"
        print(text + f"  lowest_loss={trainer.best_valid_loss:.4e}  ({record['seconds']:.1f}s)", flush=True)


class EarlyStopping(Callback):
    """End the run after ``patience`` epochs without a lower validation loss."""

    def __init__(self, patience: int, verbose: bool = True):
        self.patience, self.verbose = patience, verbose

    def on_epoch_end(self, trainer, record: dict) -> None:
        if record["epoch"] - trainer.best_epoch >= self.patience:
            trainer.should_stop = True
            if self.verbose:
                print(f"Early stop: no lower validation loss for {self.patience} epochs", flush=True)


class EveryEpochs(Callback):
    """Call ``action(trainer)`` after every ``every``-th epoch (e.g. to write a checkpoint)."""

    def __init__(self, every: int, action: Callable):
        self.every, self.action = every, action

    def on_epoch_end(self, trainer, record: dict) -> None:
        if record["epoch"] % self.every == 0:
            self.action(trainer)


class StopOnSignals(Callback):
    """The run's one handler of SIGINT and SIGTERM.

    Inside the training loop the first signal asks the trainer to stop after the current batch (so
    that the run can save what it has) and a second one exits at once. Used as a context manager
    around training and saving, it also covers the time outside the loop (while the run saves): a
    signal there exits at once, and cleanly (files are written atomically, so none is left
    half-written: see ``_exit_at_once``), instead of a ``KeyboardInterrupt`` traceback mid-save or
    the default SIGTERM death that skips every clean-up. ``announce``: say so on stderr (in a
    distributed run, only rank 0 does).
    """

    def __init__(self, announce: bool = True):
        self.announce = announce
        self.trainer = None  # while the loop runs
        self.previous: dict = {}
        self._installed_by_training = False

    def __enter__(self) -> StopOnSignals:
        self._install()
        return self

    def __exit__(self, *exc) -> None:
        self._uninstall()

    def on_train_start(self, trainer) -> None:
        self.trainer = trainer
        if not self.previous:  # a callback alone, not around the run: only the loop is covered
            self._installed_by_training = self._install()

    def on_train_end(self, trainer) -> None:
        self.trainer = None
        if self._installed_by_training:
            self._uninstall()
            self._installed_by_training = False

    def _install(self) -> bool:
        if threading.current_thread() is not threading.main_thread():
            return False  # signal handlers can only be installed from the main thread
        self.previous = {s: signal.signal(s, self._handle) for s in STOP_SIGNALS}
        return True

    def _uninstall(self) -> None:
        for s, handler in self.previous.items():
            signal.signal(s, handler)
        self.previous = {}

    def _handle(self, signum, frame) -> None:
        trainer = self.trainer
        if trainer is None or trainer.stop_reason is not None:
            _exit_at_once(signum, frame)
        if self.announce:
            print(f"\n{signal.Signals(signum).name}: stopping after this batch to save (send it again to exit "
                  "at once)", file=sys.stderr, flush=True)
        trainer.request_stop(signal.Signals(signum).name)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _exit_at_once(signum, _frame):
    # SystemExit rather than os._exit: an atomic save in progress still removes its temporary file.
    print(f"\n{signal.Signals(signum).name}: exiting at once", file=sys.stderr, flush=True)
    raise SystemExit(128 + signum)
