"""The web app ``mnist-serve`` runs: one page to draw or upload a picture, and a small REST API.

    GET  /          the page: a canvas (mouse, pen or finger), a bar per class, the 28x28 input
    POST /predict   an image upload (multipart field ``file``) or JSON ``{"pixels": ...}``
    GET  /model     what is loaded;  GET /healthz;  GET /docs (OpenAPI)

Every request body is read into memory under a cap and nothing is written to disk. Bad input is
a 4xx answer with a JSON ``detail``, never a 500. With an ONNX export beside the model file
(``mnist-export``), onnxruntime computes the answers; PyTorch otherwise.
"""

from __future__ import annotations

import asyncio
import io
import json
import math
import re
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path

import torch
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse
from PIL import Image

from ..data import preprocessing
from ..errors import UserError, first_line
from .export import INPUT, OUTPUT, file_digest, read_metadata
from .predictor import Predictor

MAX_UPLOAD_BYTES = 5 * 2**20
# Far below Pillow's bomb limit (89 million): a 13000x13000 picture took 2 s and 1 GB to refuse
# there. A photo of a digit needs far fewer pixels than this.
MAX_PIXELS = 25_000_000
INLINE_BYTES = 256 * 2**10  # bodies up to this size are answered on the event loop
MAX_PARTS = 16  # multipart fields read before giving up on finding 'file'
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
            try:
                self._session = onnxruntime.InferenceSession(str(onnx_fn), options,
                                                             providers=["CPUExecutionProvider"])
            except Exception as e:  # noqa: BLE001 -- onnxruntime raises its own kinds
                raise UserError(f"{onnx_fn}: onnxruntime cannot load it ({first_line(e)}); export again, or "
                                "serve with --no-export") from e
            self.name = "onnxruntime"
        self.predictor = predictor

    def log_probs(self, x: torch.Tensor) -> torch.Tensor:
        if self._session is None:
            return self.predictor.log_probs(x)
        return torch.from_numpy(self._session.run([OUTPUT], {INPUT: x.numpy()})[0])


def find_export(model_fn: Path) -> tuple[Path | None, str | None]:
    """``model.onnx`` beside ``model.pth`` when it was made from this very file (and onnxruntime is
    installed to run it); otherwise None, and a note saying why it is not used."""
    candidate = model_fn.with_suffix(".onnx")
    if not candidate.is_file():
        return None, None
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return None, f"{candidate} is not used: onnxruntime is not installed; PyTorch answers"
    description = read_metadata(candidate)
    if description is None or description.get("source_sha256") != file_digest(model_fn):
        return None, (f"{candidate} is not used: it was not exported from this {model_fn.name} (trained again "
                      "since?); PyTorch answers. Run mnist-export again to use onnxruntime")
    return candidate, None


def create_app(model_fn: str | Path, use_export: bool = True, say=lambda note: None) -> FastAPI:
    """The app for ``model_fn``; ``say`` receives a note when an export beside it is not used."""
    model_fn = Path(model_fn)
    predictor = Predictor(model_fn)
    export, note = find_export(model_fn) if use_export else (None, None)
    if note:
        say(note)
    backend = Backend(predictor, export)
    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mnist-serve")
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
            raise HTTPException(400, f"{preprocessing.as_record(predictor.record).not_images()}; use mnist-predict "
                                     "or the Predictor from Python")
        body = await read_capped(request)
        prepare = preparer(predictor, request.headers.get("content-type", ""), body)

        def work() -> dict:
            x, shown = prepare()
            return answer(predictor, backend.log_probs(x), shown)

        if len(body) <= INLINE_BYTES:
            return work()  # a drawing or JSON pixels: ~2 ms; a thread hand-off would cost a third of that
        # A large picture can take a second to decode: off the event loop, so that it does not
        # stall every other request (and /healthz); on one worker thread, as more threads only
        # fight over the GIL and the cores (anyio's pool of 40 halved the requests/s).
        return await asyncio.get_running_loop().run_in_executor(worker, work)

    return app


def preparer(predictor: Predictor, content_type: str, body: bytes):
    """What turns this request's body into the model's input: an upload or JSON pixels."""
    kind = content_type.split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        return lambda: prepared_upload(predictor, content_type, body)
    if kind == "application/json":
        return lambda: prepared_pixels(predictor, body)
    raise HTTPException(415, "send an image as multipart/form-data (field 'file') or JSON {\"pixels\": ...}")


def describe_model(predictor: Predictor, backend: str) -> dict:
    accuracies = [h["valid_accuracy"] for h in predictor.history if isinstance(h.get("valid_accuracy"), float)]
    return {"model_name": predictor.model_name, "dataset": predictor.metadata.get("name"),
            "task": predictor.task, "classes": predictor.classes, "input_shape": list(predictor.input_shape),
            "takes": "images" if predictor.takes_images else "table rows",
            # The drawing pad suits digit-like models only (one channel, prepared the MNIST way).
            "drawing": predictor.record.get("kind") == preprocessing.IMAGE and predictor.input_shape[0] == 1,
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
    found = multipart_field(content_type, body, "file")
    if found is None:
        raise HTTPException(400, "no multipart field named 'file' in the request")
    data, filename = found
    if not data:
        raise HTTPException(400, "the uploaded file is empty")
    stream = io.BytesIO(data)
    stream.name = f"the upload {filename!r}" if filename else "the upload"  # what error messages call it
    check_pixel_count(stream)
    try:
        image = predictor.image_input(stream)
    except UserError as e:
        raise HTTPException(400, str(e)) from e
    return torch.from_numpy(image).unsqueeze(0), shown_input(image)


def shown_input(image) -> list:
    """What the model saw, for the page: rows of brightness, or rows of [r, g, b] for colour."""
    return image[0].tolist() if image.shape[0] == 1 else image.transpose(1, 2, 0).tolist()


def check_pixel_count(stream: io.BytesIO) -> None:
    """Refuse a picture with more than MAX_PIXELS from its header alone, before decoding it."""
    try:
        with Image.open(stream) as image:
            width, height = image.size
    except Image.DecompressionBombError:  # Pillow refuses to open one that large at all
        width = height = MAX_PIXELS + 1
        stream.name += " (a decompression bomb?)"
    except Exception:  # noqa: BLE001 -- not an image: image_input says so in its own words
        width = height = 0
    stream.seek(0)
    if width * height > MAX_PIXELS:
        size = f"{width}x{height} is" if width <= MAX_PIXELS else "its size is"
        raise HTTPException(413, f"{stream.name}: {size} more than {MAX_PIXELS:,} pixels; send a smaller picture")


def multipart_field(content_type: str, body: bytes, name: str) -> tuple[bytes, str | None] | None:
    """(content, filename) of the form field ``name`` in a multipart/form-data body (RFC 7578), or None.

    A few lines over the bytes, kept in memory: the standard library's email parser took 4 ms a
    request, more than preparing the image and running the model together; Starlette's spools large
    files to disk. At most MAX_PARTS fields are looked at."""
    boundary = re.search(r'boundary="?([^";,\s]+)"?', content_type, re.IGNORECASE)
    if boundary is None:
        raise HTTPException(400, "a multipart request without a boundary")
    delimiter = b"\r\n--" + boundary.group(1).encode("latin-1")
    body = b"\r\n" + body  # the first delimiter has no line break before it
    start = body.find(delimiter)
    for _ in range(MAX_PARTS):
        if start < 0 or body[start + len(delimiter):start + len(delimiter) + 2] == b"--":
            return None  # no more parts, or the closing delimiter
        end = body.find(delimiter, start + len(delimiter))
        part = body[start + len(delimiter):end if end >= 0 else len(body)]
        head, separator, content = part.partition(b"\r\n\r\n")
        disposition = next((line for line in head.split(b"\r\n")
                            if line.lower().startswith(b"content-disposition:")), b"")
        field = re.search(rb'(?:^|;)\s*name="([^"]*)"', disposition.partition(b":")[2])
        if separator and field and field.group(1) == name.encode():
            filename = re.search(rb'(?:^|;)\s*filename="([^"]*)"', disposition.partition(b":")[2])
            return content, filename.group(1).decode("utf-8", "replace") if filename else None
        start = end
    return None


def prepared_pixels(predictor: Predictor, body: bytes) -> tuple[torch.Tensor, list]:
    """JSON pixels (the model's input shape, e.g. 28x28, or as many values flat, each in [0, 1]) as
    one input."""
    shape = predictor.input_shape
    expected = f"{' rows of '.join(map(str, shape[-2:]))} numbers, or {math.prod(shape)} numbers"
    try:
        # Integers as floats: a huge one becomes inf (refused below) instead of overflowing torch.
        pixels = json.loads(body, parse_int=float)["pixels"]
        if not all_numbers(pixels):
            raise TypeError("pixels must be numbers")
        x = torch.tensor(pixels, dtype=torch.float32)
    except (ValueError, KeyError, TypeError, RuntimeError, OverflowError, RecursionError):
        raise HTTPException(422, f"send JSON {{\"pixels\": ...}}: {expected}, each in [0, 1]") from None
    if x.numel() != math.prod(shape):
        raise HTTPException(422, f"{x.numel()} pixel values; this model takes {math.prod(shape)} "
                                 f"({' x '.join(map(str, shape))})")
    if not torch.isfinite(x).all() or x.min() < 0 or x.max() > 1:
        raise HTTPException(422, "every pixel must be a number in [0, 1] (no NaN)")
    x = preprocessing.to_model_input(predictor.record, x.reshape(1, *shape))
    return x, shown_input(x[0].numpy())


def all_numbers(value, depth: int = 0) -> bool:
    """Nested lists of JSON numbers only (true and false are not pixels)."""
    if isinstance(value, list):
        return depth < 4 and all(all_numbers(v, depth + 1) for v in value)
    return isinstance(value, float)


def answer(predictor: Predictor, log_probs: torch.Tensor, shown: list) -> dict:
    """The response for one input: ``Predictor``'s answer, with every class's probability."""
    (prediction,) = predictor.predictions(log_probs.float(), ["upload"], top_k=len(predictor.classes))
    probabilities = dict(prediction.top_k)
    return {"class_index": predictor.classes.index(prediction.label), "label": prediction.label,
            "probability": prediction.probability,
            "probabilities": {label: probabilities[label] for label in predictor.classes}, "model_input": shown}
