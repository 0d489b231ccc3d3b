"""The model file: weights, optimizer state, config, architecture and history as plain values.

It loads with ``torch.load(path, weights_only=True)``, so opening a file never runs code, and it
is written atomically, so an interrupted save never destroys the previous model.
"""

from __future__ import annotations

import os
import pickle
import re
import tempfile
from pathlib import Path

import torch

from .errors import UserError
from .model import ImageClassifier

FORMAT = "mnist_classifier.model/1"


def save_model_file(path: str | Path, model: ImageClassifier, optimizer, config: dict, **extra) -> None:
    """Save everything needed to rebuild and use ``model`` from this file alone."""
    payload = {
        "format": FORMAT,
        "model": model.state_dict(),
        "opt": optimizer.state_dict(),
        "config": config,
        "architecture": model.architecture(),
        **extra,
    }
    atomic_torch_save(payload, path)


def atomic_torch_save(obj, path: str | Path) -> None:
    """``torch.save`` to a temporary file in the same folder, fsync, then rename over ``path``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic on POSIX and Windows: readers see the old or the new file
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; not every platform lets a folder be opened this way.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_model_file(path: str | Path) -> dict:
    """Read a model file safely (no code runs) and check it is one of ours."""
    return load_safely(path, FORMAT, "model file")


def load_safely(path: str | Path, expected_format: str, kind: str) -> dict:
    """``torch.load(weights_only=True)`` with one-line errors; the file must carry ``expected_format``."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such {kind}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # weights_only refuses any callable the file names: that is how a code payload shows.
        payload_global = re.search(r"Unsupported global: GLOBAL (\S+)", str(e))
        if payload_global:
            raise UserError(
                f"{path}: refused to load, the file would call {payload_global.group(1)} (only plain weights "
                "are accepted; nothing in it was run)"
            ) from e
        raise UserError(f"{path}: not a readable {kind} (it is not a torch.save archive)") from e
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise UserError(f"{path}: not a readable {kind} ({_first_line(e)})") from e
    if not isinstance(payload, dict) or payload.get("format") != expected_format:
        raise UserError(f"{path}: not a {kind} written by mnist_classifier")
    return payload


def build_model(payload: dict, path: str | Path = "model file") -> ImageClassifier:
    """Rebuild the saved model in eval mode from what ``load_model_file`` returned."""
    try:
        model = ImageClassifier(**payload["architecture"])
        model.load_state_dict(payload["model"])
    except (KeyError, TypeError, RuntimeError) as e:
        raise UserError(f"{path}: the weights do not match the saved architecture ({_first_line(e)})") from e
    return model.eval()


def load_model(path: str | Path) -> tuple[ImageClassifier, dict]:
    """The model, ready for inference, and the whole file's contents."""
    payload = load_model_file(path)
    return build_model(payload, path), payload


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
