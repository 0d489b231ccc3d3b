"""The model file: weights, the model's registry name and constructor values, the preprocessing
record, optimizer state, config and history, all as plain values.

Schema 3 stores each fact once: the input shape in the preprocessing record, the classes in
``dataset``. Loading checks the schema (``check_schema``) and brings files of schemas 1 and 2 to it.

It loads with ``torch.load(path, weights_only=True)``, so opening a file never runs code, and it
is written atomically, so an interrupted save never destroys the previous model.
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import torch
from torch import nn

from ..data.preprocessing import CLASSIFICATION, REGRESSION, check_record, image_record, input_shape, legacy_record
from ..errors import UserError, first_line
from ..files import atomic_write
from ..kinds import as_record
from ..models import MODELS, name_of

FORMAT = "mnist_classifier.model/3"
# Release 1 wrote only MLPs, with statistics in "dataset"; schema 2 kept copies of the input shape
# and classes. Such files still load and predict the same.
RELEASE_1, SCHEMA_2 = "mnist_classifier.model/1", "mnist_classifier.model/2"
OLD_FORMATS = (SCHEMA_2, RELEASE_1)
# Model files from before datasets were recorded were all MNIST.
MNIST_METADATA = {"name": "mnist", "task": CLASSIFICATION, "classes": [str(d) for d in range(10)]}
# What every model file holds (after ``load_model_file``), and of which type.
SCHEMA = {"model_name": str, "architecture": dict, "model": dict, "preprocessing": dict, "dataset": dict,
          "config": dict, "history": list}


def save_model_file(path: str | Path, model: nn.Module, optimizer, config: dict, preprocessing: dict | None = None,
                    **extra) -> None:
    """Save everything needed to rebuild and use ``model`` from this file alone.

    ``preprocessing`` is the record raw input must go through (``data.preprocessing``); without one,
    the model is taken to read MNIST-like images. ``extra`` holds the rest: ``dataset`` metadata
    (name, task, classes), ``history``, ``best_epoch``, ...; an input shape in it is left out (the
    record has it).
    """
    extra.pop("classes", None)  # schema 2's copy of the dataset's classes
    if "dataset" in extra:
        extra["dataset"] = {k: v for k, v in extra["dataset"].items() if k != "input_shape"}
    payload = {
        "format": FORMAT,
        "model_name": name_of(model),
        "architecture": model.architecture(),
        "model": model.state_dict(),
        "preprocessing": preprocessing or image_record((1, 28, 28)),
        "opt": optimizer.state_dict() if optimizer is not None else None,
        "config": config,
        **extra,
    }
    payload.setdefault("dataset", MNIST_METADATA)
    payload.setdefault("history", [])
    atomic_torch_save(payload, path)


def atomic_torch_save(obj, path: str | Path) -> None:
    """``torch.save`` through ``files.atomic_write``: never a half-written file, one line on failure."""
    atomic_write(path, lambda f: torch.save(obj, f))


def load_model_file(path: str | Path) -> dict:
    """Read a model file safely (no code runs), check it is one of ours, bring an older schema to
    today's, and check it holds what every model file holds."""
    payload = load_safely(path, (FORMAT, *OLD_FORMATS), "model file")
    if payload["format"] == RELEASE_1:
        metadata = payload.get("dataset") or dict(MNIST_METADATA, input_shape=[28, 28])
        payload["model_name"] = "mlp"
        payload["preprocessing"] = legacy_record(metadata)
        payload["dataset"] = metadata
    if payload["format"] in OLD_FORMATS:
        payload.pop("classes", None)
        if isinstance(payload.get("dataset"), dict):
            payload["dataset"] = {k: v for k, v in payload["dataset"].items() if k != "input_shape"}
        payload.setdefault("config", {})
        payload.setdefault("history", [])
        payload["format"] = FORMAT
    check_schema(payload, path)
    return payload


def check_schema(payload: dict, path) -> None:
    """Refuse, in one line, a file missing a part every model file has (a hand-edited or damaged one)."""
    for key, kind in SCHEMA.items():
        if not isinstance(payload.get(key), kind):
            raise UserError(f"{path}: the file's contents are damaged ({key!r} is missing or not a {kind.__name__})")
    metadata = payload["dataset"]
    classes = metadata.get("classes")
    if metadata.get("task", CLASSIFICATION) not in (CLASSIFICATION, REGRESSION) or not (
            classes is None or isinstance(classes, list) and all(isinstance(c, str) for c in classes)):
        raise UserError(f"{path}: the file's contents are damaged (its task or classes)")


def load_safely(path: str | Path, expected_format: str | tuple[str, ...], kind: str) -> dict:
    """``torch.load(weights_only=True)`` with one-line errors; the file must carry ``expected_format``."""
    if not isinstance(path, (str, os.PathLike)):
        raise UserError(f"a {kind} is given by its path (a str or Path), not a {type(path).__name__}")
    path = Path(path)
    try:
        if not path.is_file():
            raise UserError(f"{path}: no such {kind}")
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
    except UserError:
        raise
    except Exception as e:  # torch's reader fails in many ways on bytes that are not its archive
        raise UserError(f"{path}: not a readable {kind} ({first_line(e)})") from e
    formats = (expected_format,) if isinstance(expected_format, str) else expected_format
    if not isinstance(payload, dict) or payload.get("format") not in formats:
        raise UserError(f"{path}: not a {kind} written by mnist_classifier")
    return payload


def build_model(payload: dict, path: str | Path = "model file") -> nn.Module:
    """Rebuild the saved model in eval mode from what ``load_model_file`` returned, after checking
    that the file's parts agree: weights, architecture, preprocessing record and classes."""
    name = payload.get("model_name")
    if name not in MODELS:
        raise UserError(f"{path}: names the model {name!r}, which this version does not know "
                        f"({', '.join(MODELS)})")
    record = check_record(payload.get("preprocessing"), str(path))
    try:
        model = as_record(record).family(name).MODEL_CLASS(**payload["architecture"])
        model.load_state_dict(payload["model"])
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise UserError(f"{path}: the weights do not match the saved architecture ({first_line(e)})") from e
    model.eval()
    if not all(torch.isfinite(t).all() for t in model.state_dict().values() if t.is_floating_point()):
        raise UserError(f"{path}: the weights hold NaN or infinite values; the model cannot predict")
    _check_agrees(model, record, payload.get("dataset") or {}, path)
    return model


def _check_agrees(model: nn.Module, record: dict, metadata: dict, path) -> None:
    """One forward pass on zeros: the record's input shape must fit the model, and the output must
    have one value per class (one value for regression)."""
    classes = metadata.get("classes")
    expected = len(classes) if metadata.get("task", CLASSIFICATION) == CLASSIFICATION and classes else 1
    try:
        with torch.inference_mode():
            output = model(torch.zeros(2, *input_shape(record)))
    except RuntimeError as e:
        raise UserError(f"{path}: the model does not take the input its preprocessing record describes "
                        f"({first_line(e)})") from e
    if tuple(output.shape) != (2, expected):
        raise UserError(f"{path}: the model gives {output.shape[-1]} outputs, but the file lists {expected} "
                        "classes" if expected > 1 else f"{path}: a regression model must give one output")


def load_model(path: str | Path) -> tuple[nn.Module, dict]:
    """The model, ready for inference, and the whole file's contents."""
    payload = load_model_file(path)  # its schema checked: a damaged file is one line, a bug a traceback
    return build_model(payload, path), payload
