"""Nothing lost: resumable checkpoints, and a clean stop on Ctrl-C or SIGTERM.

A checkpoint holds the trainer's snapshot of its last completed epoch (weights, optimizer,
schedule, history, best-so-far, random number generators) and the configuration, so a resumed
run continues exactly where the snapshot was taken: on the CPU, bit for bit.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from pathlib import Path

from .model_file import atomic_torch_save, load_safely
from .trainer import Trainer

FORMAT = "mnist_classifier.checkpoint/1"


def save_checkpoint(path: str | Path, trainer: Trainer, config: dict) -> None:
    """Write the last completed epoch's snapshot atomically (never a half-written file)."""
    atomic_torch_save({"format": FORMAT, "config": config, "trainer": trainer.snapshot}, path)


def load_checkpoint(path: str | Path) -> dict:
    """A checkpoint written by ``save_checkpoint``, loaded without running any code."""
    return load_safely(path, FORMAT, "checkpoint")


@contextlib.contextmanager
def stop_on_signals(trainer: Trainer):
    """The first SIGINT or SIGTERM asks the trainer to stop after the current batch; a second
    one exits at once (every file is written atomically, so none is left half-written)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be installed from the main thread
        return

    def handle(signum, _frame):
        name = signal.Signals(signum).name
        if trainer.stop_reason is not None:
            print(f"\n{name} again: exiting at once", file=sys.stderr, flush=True)
            os._exit(128 + signum)
        print(f"\n{name}: stopping after this batch to save (send it again to exit at once)",
              file=sys.stderr, flush=True)
        trainer.request_stop(name)

    previous = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
