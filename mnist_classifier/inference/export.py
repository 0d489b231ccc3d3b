"""A model file as a file other runtimes can run: ONNX (onnxruntime, browsers, C++, C#, ...) or
TorchScript (libtorch, without Python), with a dynamic batch size.

The preprocessing record travels with the export, so that a consumer without this package can
prepare input the same way: inside the file (ONNX metadata ``mnist_classifier``, a TorchScript
extra file ``mnist_classifier.json``) and as a JSON file beside it (``OUT.json``). Each export is
checked before it is kept: on ``PARITY_ROWS`` inputs it must give the same class as PyTorch for
every one and outputs within ``TOLERANCE``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import UserError, first_line
from ..files import atomic_write
from ..kinds import as_record
from .model_file import load_model

EXPORT_FORMAT = "mnist_classifier.export/1"
FORMATS = ("onnx", "torchscript")
SUFFIXES = {"onnx": ".onnx", "torchscript": ".pt"}
INPUT, OUTPUT = "input", "output"
METADATA_KEY = "mnist_classifier"
PARITY_ROWS = 1000
MAX_EXPORT_BYTES = 2**31  # protobuf's own limit for one ONNX file
TOLERANCE = 1e-4  # largest difference allowed in any output value (float32 log-probabilities)


@dataclass
class Exported:
    path: Path
    sidecar: Path
    max_difference: float  # over PARITY_ROWS inputs, against PyTorch
    rows_checked: int


def export_model(model_fn: str | Path, fmt: str, out: str | Path) -> Exported:
    """Export ``model_fn`` to ``out`` in ``fmt`` (``onnx`` or ``torchscript``), check it, keep it."""
    if fmt not in FORMATS:
        raise UserError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    model, saved = load_model(model_fn)
    description = describe(saved) | {"source_sha256": file_digest(model_fn)}
    kind = as_record(saved["preprocessing"])
    example = kind.example_input(2)
    build, runner = BUILDERS[fmt]
    data = build(model, example, description, description["input"])
    inputs = parity_inputs(saved["preprocessing"])
    run = runner(data)
    try:
        difference = check_parity(model, run, inputs, classify=description["task"] == "classification")
    except UserError as e:
        raise UserError(f"{e}; nothing was written") from e
    out, sidecar = Path(out), Path(f"{out}.json")
    atomic_write(out, lambda f: f.write(data))
    atomic_write(sidecar, lambda f: f.write(json.dumps(description, indent=2).encode()))
    for suffix, text in kind.export_files().items():  # a text model's tokenizer, as its own JSON
        atomic_write(Path(f"{out}{suffix}"), lambda f, text=text: f.write(text.encode("utf-8")))
    return Exported(out, sidecar, difference, len(inputs))


def describe(saved: dict) -> dict:
    """What a consumer needs besides the weights: how to prepare input, what the output means."""
    metadata = saved["dataset"]
    task = metadata.get("task", "classification")
    return {
        "format": EXPORT_FORMAT,
        "model_name": saved["model_name"],
        "task": task,
        "classes": metadata.get("classes") if task == "classification" else None,
        "input": {"name": INPUT, **as_record(saved["preprocessing"]).export_input()},
        "output": {"name": OUTPUT, "meaning": "log-probabilities per class" if task == "classification"
                   else "the prediction in standardised units: multiply by y_std, add y_mean"},
        "preprocessing": saved["preprocessing"],
        "preparation": preparation(saved["preprocessing"]),
    }


def preparation(record: dict) -> str:
    """How a picture (or a row) becomes this model's input, in words."""
    return as_record(record).preparation()


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file: ties an export to the model file it was made from."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def build_onnx(model: nn.Module, example: torch.Tensor, description: dict, axes: dict) -> bytes:
    import onnx

    # The batch, and a text's length: every axis the description names by a word is dynamic.
    dynamic = {axis: torch.export.Dim(name, min=1 if name == "batch" else axes.get("min_length", 1))
               for axis, name in enumerate(axes["shape"]) if isinstance(name, str) and axis < example.dim()}
    try:  # the exporter reports its steps on stdout and warns about what the parity check verifies
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(model, (example,), input_names=[INPUT], output_names=[OUTPUT],
                                        dynamic_shapes=(dynamic,), dynamo=True)
    except Exception as e:  # noqa: BLE001 -- the exporter raises many kinds; the user needs the first line
        raise UserError(f"this model could not be exported to ONNX ({type(e).__name__}: {first_line(e)})") from e
    proto = program.model_proto
    # Added beside whatever metadata the exporter wrote (set_model_props would replace it).
    proto.metadata_props.append(onnx.StringStringEntryProto(key=METADATA_KEY, value=json.dumps(description)))
    return proto.SerializeToString()


def build_torchscript(model: nn.Module, example: torch.Tensor, description: dict, axes: dict) -> bytes:
    # Tracing records the operations run on the example; none of the registry's models branches on
    # its input's values, and the parity check below runs the trace on other batch sizes.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings: the parity check runs other batch sizes
        traced = torch.jit.trace(model, example, check_trace=False)
    for parameter in traced.parameters():  # an inference-only module: outputs need no gradient
        parameter.requires_grad_(False)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated in favour of torch.export
        torch.jit.save(traced, buffer, _extra_files={f"{METADATA_KEY}.json": json.dumps(description)})
    return buffer.getvalue()


def onnx_runner(data: bytes):
    import onnxruntime

    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    return lambda x: torch.from_numpy(session.run([OUTPUT], {INPUT: x.numpy()})[0])


def torchscript_runner(data: bytes):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        module = torch.jit.load(io.BytesIO(data))
    return lambda x: module(x)


BUILDERS = {"onnx": (build_onnx, onnx_runner), "torchscript": (build_torchscript, torchscript_runner)}


def parity_inputs(record: dict, rows: int = PARITY_ROWS) -> torch.Tensor:
    """Inputs of the kind the model sees: pixels in [0, 1], or standardised table rows."""
    return as_record(record).parity_inputs(rows, torch.Generator().manual_seed(0))


@torch.inference_mode()
def check_parity(model: nn.Module, run, inputs: torch.Tensor, classify: bool) -> float:
    """The largest output difference between the export and PyTorch; refuses an export that differs
    by more than TOLERANCE or predicts another class for any input."""
    expected = model(inputs)
    got = torch.cat([run(chunk) for chunk in (inputs[:1], inputs[1:])])  # one input, then a batch
    difference = (got - expected).abs().max().item()
    if not np.isfinite(difference) or difference > TOLERANCE:
        raise UserError(f"the export differs from PyTorch by {difference:.3g} (more than {TOLERANCE:g})")
    if classify and not torch.equal(got.argmax(dim=-1), expected.argmax(dim=-1)):
        raise UserError("the export predicts another class than PyTorch for some inputs")
    return difference


def read_metadata(path: str | Path) -> dict | None:
    """The description an export of ours carries inside it (ONNX metadata, or a TorchScript archive's
    extra file, read as a zip without loading any code); None for any other file."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_EXPORT_BYTES:
            return None  # a user's large file: never read whole just to learn it is not ours
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                name = next(n for n in archive.namelist() if n.endswith(f"/extra/{METADATA_KEY}.json"))
                description = json.loads(archive.read(name))
        else:
            import onnx

            props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
            description = json.loads(props[METADATA_KEY])
    except Exception:  # noqa: BLE001 -- anything unreadable is simply not an export of ours
        return None
    return description if isinstance(description, dict) and description.get("format") == EXPORT_FORMAT else None
