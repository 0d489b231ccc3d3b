"""Nothing lost: resumable checkpoints.

A checkpoint holds the trainer's snapshot of its last completed epoch (weights, optimizer,
schedule, history, best-so-far, random number generators) and the configuration, so a resumed
run continues exactly where the snapshot was taken: on the CPU, bit for bit. On Ctrl-C or SIGTERM,
``callbacks.StopOnSignals`` (the run's one signal handler) stops the trainer after the batch and
``mnist-train`` then writes one.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from ..inference.model_file import atomic_torch_save, load_safely
from .trainer import Trainer

FORMAT = "mnist_classifier.checkpoint/1"


def save_checkpoint(path: str | Path, trainer: Trainer, config: dict, data: dict | None = None) -> None:
    """Write the last completed epoch's snapshot atomically (never a half-written file); ``data`` is
    the training data's fingerprint (``data.dataset.fingerprint``), checked when the run resumes."""
    atomic_torch_save({"format": FORMAT, "config": config, "trainer": trainer.checkpoint_state(), "data": data}, path)


def load_checkpoint(path: str | Path) -> dict:
    """A checkpoint written by ``save_checkpoint``, loaded without running any code."""
    payload = load_safely(path, FORMAT, "checkpoint")
    config, trainer = payload.get("config"), payload.get("trainer")
    if not (isinstance(config, dict) and isinstance(trainer, dict) and {"dataset", "model_fn"} <= config.keys()):
        raise UserError(f"{path}: the checkpoint is damaged (its configuration or training state is missing)")
    return payload

