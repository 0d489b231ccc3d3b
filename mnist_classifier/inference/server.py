"""The web app ``mnist-serve`` runs: one page to draw or upload a picture, and a small REST API.

    GET  /          the page: a canvas (mouse, pen or finger), a bar per class, the 28x28 input
    POST /predict   an image upload (multipart field ``file``) or JSON ``{"pixels": ...}``
    GET  /model     what is loaded;  GET /healthz;  GET /docs (OpenAPI)

Every request body is read into memory under a cap and nothing is written to disk. Bad input is
a 4xx answer with a JSON ``detail``, never a 500. With an ONNX export beside the model file
(``mnist-export``), onnxruntime computes the answers; PyTorch otherwise.
"""

from __future__ import annotations

import io
import json
import math
import re
from importlib import resources
from pathlib import Path

import torch
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse

from ..data import preprocessing
from ..errors import UserError
from .predictor import Predictor

MAX_UPLOAD_BYTES = 5 * 2**20
JSON_BODY = {"type": "object", "required": ["pixels"], "properties": {"pixels": {
    "description": "a 28x28 array, or 784 values, each in [0, 1]", "type": "array"}}}
UPLOAD_BODY = {"type": "object", "required": ["file"], "properties": {"file": {"type": "string", "format": "binary"}}}


class Backend:
    """Log-probabilities for prepared input: onnxruntime on an export beside the model, else PyTorch."""

    def __init__(self, predictor: Predictor, onnx_fn: Path | None):
        self.name, self._session = "pytorch", None
        if onnx_fn is not None:
            import onnxruntime

            options = onnxruntime.SessionOptions()
            # One input at a time: a second thread, spinning while it waits, only takes a core from
            # the requests being read and answered.
            options.intra_op_num_threads = 1
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            self._session = onnxruntime.InferenceSession(str(onnx_fn), options, providers=["CPUExecutionProvider"])
            self.name = "onnxruntime"
        self.predictor = predictor

    def log_probs(self, x: torch.Tensor) -> torch.Tensor:
        if self._session is None:
            return self.predictor.log_probs(x)
        return torch.from_numpy(self._session.run(["output"], {"input": x.numpy()})[0])


def find_export(model_fn: Path) -> Path | None:
    """``model.onnx`` beside ``model.pth``, if onnxruntime is installed to run it."""
    candidate = model_fn.with_suffix(".onnx")
    if not candidate.is_file():
        return None
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return None
    return candidate


def create_app(model_fn: str | Path, use_export: bool = True) -> FastAPI:
    model_fn = Path(model_fn)
    predictor = Predictor(model_fn)
    backend = Backend(predictor, find_export(model_fn) if use_export else None)
    app = FastAPI(title="mnist-classifier", description="Draw or upload a picture; the model answers.")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> str:
        return resources.files(__package__).joinpath("static/index.html").read_text(encoding="utf-8")

    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/model")
    def model() -> dict:
        return describe_model(predictor, backend.name)

    @app.post("/predict", openapi_extra={"requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": UPLOAD_BODY}, "application/json": {"schema": JSON_BODY}}}})
    async def predict(request: Request) -> dict:
        if not predictor.takes_images:
            raise HTTPException(400, f"this model takes table rows of {predictor.input_shape[0]} numeric features, "
                                     "not images; use mnist-predict or the Predictor from Python")
        body = await read_capped(request)
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind == "multipart/form-data":
            x, shown = prepared_upload(predictor, request.headers["content-type"], body)
        elif kind == "application/json":
            x, shown = prepared_pixels(predictor, body)
        else:
            raise HTTPException(415, "send an image as multipart/form-data (field 'file') or JSON {\"pixels\": ...}")
        return answer(predictor, backend.log_probs(x), shown)

    return app


def describe_model(predictor: Predictor, backend: str) -> dict:
    accuracies = [h["valid_accuracy"] for h in predictor.history if isinstance(h.get("valid_accuracy"), float)]
    return {"model_name": predictor.model_name, "dataset": predictor.metadata.get("name"),
            "task": predictor.task, "classes": predictor.classes, "input_shape": list(predictor.input_shape),
            "takes": "images" if predictor.takes_images else "table rows",
            "best_valid_accuracy": max(accuracies) if accuracies else None, "backend": backend}


async def read_capped(request: Request) -> bytes:
    """The whole body, refused with 413 past MAX_UPLOAD_BYTES (whatever Content-Length claims)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_UPLOAD_BYTES:
        raise HTTPException(413, f"the request is larger than {MAX_UPLOAD_BYTES // 2**20} MB")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_UPLOAD_BYTES:
            raise HTTPException(413, f"the request is larger than {MAX_UPLOAD_BYTES // 2**20} MB")
        chunks.append(chunk)
    if not size:
        raise HTTPException(400, "the request is empty")
    return b"".join(chunks)


def prepared_upload(predictor: Predictor, content_type: str, body: bytes) -> tuple[torch.Tensor, list]:
    """The multipart field ``file``, opened and prepared in memory as the model's data was."""
    data = multipart_field(content_type, body, "file")
    if data is None:
        raise HTTPException(400, "no multipart field named 'file' in the request")
    if not data:
        raise HTTPException(400, "the uploaded file is empty")
    try:
        image = predictor.image_input(io.BytesIO(data))
    except UserError as e:
        raise HTTPException(400, str(e).replace("<_io.BytesIO>", "the upload")) from e
    x = torch.from_numpy(image).unsqueeze(0)
    return x, image[0].tolist()


def multipart_field(content_type: str, body: bytes, name: str) -> bytes | None:
    """The content of the form field ``name`` in a multipart/form-data body (RFC 7578), or None.

    A few lines over the bytes, kept in memory: the standard library's email parser took 4 ms a
    request, more than preparing the image and running the model together."""
    boundary = re.search(r'boundary="?([^";]+)"?', content_type)
    if boundary is None:
        raise HTTPException(400, "a multipart request without a boundary")
    for part in body.split(b"--" + boundary.group(1).encode("latin-1"))[1:]:
        if part.startswith(b"--"):
            break  # the closing delimiter
        head, separator, content = part.partition(b"\r\n\r\n")
        disposition = next((line for line in head.split(b"\r\n") if line.lower().startswith(b"content-disposition:")),
                            b"")
        field = re.search(rb'(?<![A-Za-z])name="([^"]*)"', disposition)
        if separator and field and field.group(1) == name.encode():
            return content.removesuffix(b"\r\n")
    return None


def prepared_pixels(predictor: Predictor, body: bytes) -> tuple[torch.Tensor, list]:
    """JSON pixels (a 28x28 array or 784 values in [0, 1]) as one input of the model's shape."""
    try:
        pixels = json.loads(body)["pixels"]
        x = torch.tensor(pixels, dtype=torch.float32)
    except (ValueError, KeyError, TypeError, RuntimeError):
        raise HTTPException(422, "send JSON {\"pixels\": [[...], ...]}: 28 rows of 28 numbers, or 784 numbers") \
            from None
    shape = predictor.input_shape
    if x.numel() != math.prod(shape):
        raise HTTPException(422, f"{x.numel()} pixel values; this model takes {math.prod(shape)} "
                                 f"({' x '.join(map(str, shape))})")
    if not torch.isfinite(x).all() or x.min() < 0 or x.max() > 1:
        raise HTTPException(422, "every pixel must be a number in [0, 1] (no NaN)")
    x = preprocessing.to_model_input(predictor.record, x.reshape(1, *shape))
    return x, x[0, 0].tolist()


def answer(predictor: Predictor, log_probs: torch.Tensor, shown: list) -> dict:
    probabilities = log_probs[0].float().exp()
    best = int(probabilities.argmax())
    return {"class_index": best, "label": predictor.classes[best], "probability": float(probabilities[best]),
            "probabilities": {label: float(p) for label, p in zip(predictor.classes, probabilities, strict=True)},
            "model_input": shown}
