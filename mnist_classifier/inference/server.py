"""The web app ``mnist-serve`` runs: one page to draw or upload a picture, and a small REST API.

    GET  /          the page: a canvas (mouse, pen or finger), a bar per class, the 28x28 input
    POST /predict   an image upload (multipart field ``file``) or JSON ``{"pixels": ...}``
    GET  /model     what is loaded;  GET /healthz;  GET /openapi.json (and /docs with ``docs=True``)

Every request body is read into memory under a cap and nothing is written to disk. Bad input is
a 4xx answer with a JSON ``detail``, never a 500. With an ONNX export beside the model file
(``mnist-export``) that agrees with the model, onnxruntime computes the answers; PyTorch otherwise.
``build_server`` puts the app behind the limits a public server needs (``Limits``, allowed hosts).
"""

from __future__ import annotations

import asyncio
import errno
import functools
import io
import ipaddress
import json
import logging
import re
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import h11
import torch
import uvicorn
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse
from PIL import Image
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse
from uvicorn.protocols.http.h11_impl import H11Protocol

from ..errors import UserError, first_line
from ..kinds import CLASSIFICATION
from .export import INPUT, OUTPUT, check_parity, file_digest, parity_inputs, read_metadata
from .predictor import Predictor

MAX_UPLOAD_BYTES = 5 * 2**20
# Far below Pillow's bomb limit, which lets a refusal cost seconds and a gigabyte; a photo of a digit
# needs far fewer pixels (docs/results.md#where-the-defaults-come-from).
MAX_PIXELS = 25_000_000
# Bodies up to this size, and pictures up to this many pixels, are answered on the event loop (a few
# milliseconds: less than a hand-off to a thread); larger ones on the worker thread.
INLINE_BYTES = 256 * 2**10
INLINE_PIXELS = 512 * 512
MAX_PARTS = 256  # multipart parts read at most: enough for any form, few enough to parse in a few ms
SERVE_PARITY_ROWS = 64  # inputs on which an export must agree with the model before it answers
# python-multipart logs each malformed body as a warning; the 400 answer already says it, and a
# client could otherwise fill the log.
logging.getLogger("python_multipart.multipart").setLevel(logging.ERROR)
JSON_BODY = {"type": "object", "properties": {
    "pixels": {"description": "an image model's input: a 28x28 array, or 784 values, each in [0, 1]", "type": "array"},
    "text": {"description": "a text model's input: one text", "type": "string"}},
    "oneOf": [{"required": ["pixels"]}, {"required": ["text"]}]}
UPLOAD_BODY = {"type": "object", "required": ["file"], "properties": {"file": {"type": "string", "format": "binary"}}}


@dataclass(frozen=True)
class Limits:
    """What one client may take of the server. uvicorn's defaults set no header size, header count,
    read timeout or connection limit; these are ``mnist-serve``'s."""

    header_bytes: int = 16 * 2**10  # the request line and headers together (h11's default; nginx: 8-32 KB)
    header_count: int = 100  # as Apache's LimitRequestFields
    header_seconds: float = 5.0  # from connecting (or a request's first byte) to the end of its headers
    body_seconds: float = 30.0  # from the end of the headers to the end of the body: 5 MB at 1.4 Mbit/s
    keep_alive_seconds: int = 5  # an idle connection between requests (uvicorn's default)
    connections: int = 100  # busy at once (twice as many idle); more get 503. Each may hold a 5 MB body.


class Backend:
    """Log-probabilities for prepared input: onnxruntime on an export beside the model that agrees
    with it, else PyTorch."""

    def __init__(self, predictor: Predictor, onnx_fn: Path | None, say=lambda note: None):
        self.predictor, self.name, self._run = predictor, "pytorch", predictor.log_probs
        if onnx_fn is None:
            return
        try:
            run = onnx_runner(onnx_fn)
            # An export is a second program, and its metadata can be copied: it answers only once
            # it gives the model's answers, as mnist-export checks before writing one.
            inputs = parity_inputs(predictor.record, SERVE_PARITY_ROWS)
            check_parity(predictor.model, run, inputs, classify=predictor.task == CLASSIFICATION)
        except Exception as e:  # noqa: BLE001 -- a foreign file can fail in onnxruntime's or torch's words
            reason = e if isinstance(e, UserError) else f"it does not run as this model ({first_line(e)[:200]})"
            say(f"{onnx_fn} is not used: {reason}; PyTorch answers. Run mnist-export again to use onnxruntime")
            return
        self.name, self._run = "onnxruntime", run

    def log_probs(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(x)


def onnx_runner(onnx_fn: Path) -> Callable[[torch.Tensor], torch.Tensor]:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    # One input at a time: a second thread, spinning while it waits, only takes a core from the
    # requests being read and answered.
    options.intra_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = onnxruntime.InferenceSession(str(onnx_fn), options, providers=["CPUExecutionProvider"])
    return lambda x: torch.from_numpy(session.run([OUTPUT], {INPUT: x.numpy()})[0])


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


def create_app(model_fn: str | Path, use_export: bool = True, say=lambda note: None, docs: bool = False) -> FastAPI:
    """The app for ``model_fn``; ``say`` receives a note when an export beside it is not used.
    ``docs``: serve /docs and /redoc, pages that load their scripts from a CDN (off by default:
    third-party script on our origin, and blank offline); /openapi.json is always served."""
    model_fn = Path(model_fn)
    predictor = Predictor(model_fn)
    export, note = find_export(model_fn) if use_export else (None, None)
    if note:
        say(note)
    backend = Backend(predictor, export, say)
    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mnist-serve")
    app = FastAPI(title="mnist-classifier", description="Draw or upload a picture; the model answers.",
                  docs_url="/docs" if docs else None, redoc_url="/redoc" if docs else None)

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
        if predictor.data_kind.takes_texts:
            return await answer_text(predictor, backend, worker, request)
        if not predictor.takes_images:
            raise HTTPException(400, f"{predictor.data_kind.not_pictures()}; use mnist-predict "
                                     "or the Predictor from Python")
        body = await read_capped(request)
        prepare, pixels = preparer(predictor, request.headers.get("content-type", ""), body)

        def work() -> dict:
            x, shown = prepare()
            return answer(predictor, backend.log_probs(x), shown)

        if len(body) <= INLINE_BYTES and pixels <= INLINE_PIXELS:
            return work()  # a drawing or JSON pixels: cheaper than a hand-off to a thread
        # A large picture (in bytes or in pixels: a small PNG can hold millions) can take a second to
        # decode: off the event loop, so that it does not stall every other request (and /healthz);
        # on one worker thread, as more threads only fight over the GIL and the cores
        # (docs/results.md#where-the-defaults-come-from).
        return await asyncio.get_running_loop().run_in_executor(worker, work)

    return app


async def answer_text(predictor: Predictor, backend: Backend, worker: ThreadPoolExecutor, request: Request) -> dict:
    """A text model's answer to JSON ``{"text": ...}``; a long text is tokenised off the event loop."""
    body = await read_capped(request)
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        raise HTTPException(415, "this model takes texts: send JSON {\"text\": \"...\"}")

    def work() -> dict:
        x, shown = prepared_text(predictor, body)
        return answer(predictor, backend.log_probs(x), shown)

    if len(body) <= INLINE_BYTES:
        return work()
    return await asyncio.get_running_loop().run_in_executor(worker, work)


Prepare = Callable[[], "tuple[torch.Tensor, list]"]


def preparer(predictor: Predictor, content_type: str, body: bytes) -> tuple[Prepare, int]:
    """What turns this request's body into the model's input (an upload or JSON pixels), and how
    many pixels it will decode: read from a picture's header, without decoding it."""
    kind = content_type.split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        stream = uploaded_file(content_type, body)
        return (lambda: prepared_upload(predictor, stream)), pixel_count(stream)
    if kind == "application/json":
        return (lambda: prepared_pixels(predictor, body)), 0
    raise HTTPException(415, "send an image as multipart/form-data (field 'file') or JSON {\"pixels\": ...}")


def describe_model(predictor: Predictor, backend: str) -> dict:
    accuracies = [h["valid_accuracy"] for h in predictor.history if isinstance(h.get("valid_accuracy"), float)]
    return {"model_name": predictor.model_name, "dataset": public_name(predictor.metadata.get("name")),
            "task": predictor.task, "classes": predictor.classes, "input_shape": list(predictor.input_shape),
            "takes": predictor.data_kind.name, "drawing": predictor.data_kind.drawing(),
            "best_valid_accuracy": max(accuracies) if accuracies else None, "backend": backend}


def public_name(name: str | None) -> str | None:
    """A data set's name without the trainer's folders: ``csv:/home/me/loans.csv`` -> ``csv:loans.csv``."""
    if not isinstance(name, str) or ":" not in name:
        return name
    kind, _, place = name.partition(":")
    return f"{kind}:{Path(place).name}"


async def read_capped(request: Request) -> bytes:
    """The whole body, refused with 413 past MAX_UPLOAD_BYTES (whatever Content-Length claims)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_UPLOAD_BYTES:
        raise HTTPException(413, f"the request is larger than {MAX_UPLOAD_BYTES // 2**20} MB")
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_UPLOAD_BYTES:
                raise HTTPException(413, f"the request is larger than {MAX_UPLOAD_BYTES // 2**20} MB")
            chunks.append(chunk)
    except ClientDisconnect:  # the client went away mid-body (or was cut off by Limits.body_seconds)
        raise HTTPException(400, "the client disconnected before sending the whole request") from None
    if not size:
        raise HTTPException(400, "the request is empty")
    return b"".join(chunks)


def uploaded_file(content_type: str, body: bytes) -> io.BytesIO:
    """The multipart field ``file`` as a stream named for error messages."""
    found = multipart_field(content_type, body, "file")
    if found is None:
        raise HTTPException(400, "no multipart field named 'file' in the request")
    data, filename = found
    if not data:
        raise HTTPException(400, "the uploaded file is empty")
    stream = io.BytesIO(data)
    stream.name = f"the upload {filename!r}" if filename else "the upload"  # what error messages call it
    return stream


def prepared_upload(predictor: Predictor, stream: io.BytesIO) -> tuple[torch.Tensor, list]:
    """An uploaded picture, opened and prepared in memory as the model's data was."""
    try:
        image = predictor.image_input(stream)
    except UserError as e:
        raise HTTPException(400, str(e)) from e
    return torch.from_numpy(image).unsqueeze(0), shown_input(image)


def shown_input(image) -> list:
    """What the model saw, for the page: rows of brightness, or rows of [r, g, b] for colour."""
    return image[0].tolist() if image.shape[0] == 1 else image.transpose(1, 2, 0).tolist()


def pixel_count(stream: io.BytesIO) -> int:
    """A picture's pixels from its header alone (Pillow opens lazily), refused with 413 past MAX_PIXELS;
    0 for what is not a picture (image_input says so in its own words)."""
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
    return width * height


def multipart_field(content_type: str, body: bytes, name: str) -> tuple[bytes, str | None] | None:
    """(content, filename) of the form field ``name`` in a multipart/form-data body (RFC 7578), or None.

    python-multipart's parser (Starlette's), in memory: Starlette's own form reader spools files to
    disk. Header and parameter names in any case, as the RFCs say. At most MAX_PARTS parts."""
    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if not boundary:
        raise HTTPException(400, "a multipart request without a boundary")
    parts: list[tuple[dict, list]] = []  # (headers by lower-case name, pieces of content)
    header: dict = {}

    def part_begin():
        if len(parts) == MAX_PARTS:
            raise HTTPException(400, f"more than {MAX_PARTS} multipart fields; send 'file' with fewer others")
        parts.append(({}, []))

    def header_end():
        parts[-1][0][bytes(header.pop("field", b"")).lower()] = bytes(header.pop("value", b""))

    callbacks = {
        "on_part_begin": part_begin,
        "on_header_field": lambda data, start, end: header.setdefault("field", bytearray()).extend(data[start:end]),
        "on_header_value": lambda data, start, end: header.setdefault("value", bytearray()).extend(data[start:end]),
        "on_header_end": header_end,
        "on_part_data": lambda data, start, end: parts[-1][1].append(data[start:end]),
    }
    try:
        parser = MultipartParser(boundary, callbacks)
        parser.write(body)
        parser.finalize()
    except FormParserError as e:  # a malformed body, or one past the parser's own limits (a long boundary)
        raise HTTPException(400, f"the multipart body cannot be read ({first_line(e)})") from None
    for headers, pieces in parts:
        _, parameters = parse_options_header(headers.get(b"content-disposition", b""))
        if parameters.get(b"name") == name.encode():
            filename = parameters.get(b"filename")
            return b"".join(pieces), filename.decode("utf-8", "replace") if filename else None
    return None


def prepared_pixels(predictor: Predictor, body: bytes) -> tuple[torch.Tensor, list]:
    """JSON pixels as one input, in the shapes the Predictor takes (e.g. 28x28, 1x28x28, or 784
    values flat), each in [0, 1]: the Predictor's own check decides."""
    try:
        # Integers as floats: a huge one becomes inf (refused below) instead of overflowing torch.
        pixels = json.loads(body, parse_int=float)["pixels"]
        if not all_numbers(pixels):
            raise TypeError("pixels must be numbers")
        x = torch.tensor(pixels, dtype=torch.float32)
    except (ValueError, KeyError, TypeError, RuntimeError, OverflowError, RecursionError):
        raise HTTPException(422, "send JSON {\"pixels\": ...}: the model's input as nested lists of numbers, "
                                 "each in [0, 1]") from None
    try:
        x = predictor.data_kind.apply(x, name="pixels")
    except UserError as e:
        raise HTTPException(422, str(e)) from None
    if len(x) != 1:
        raise HTTPException(422, f"pixels: one input at a time, got a batch of {len(x)}")
    return x, shown_input(x[0].numpy())


def prepared_text(predictor: Predictor, body: bytes) -> tuple[torch.Tensor, list]:
    """JSON ``{"text": ...}`` as one input, and the subwords the model reads (shown on the page)."""
    try:
        text = json.loads(body)["text"]
        if not isinstance(text, str):
            raise TypeError("text must be a string")
    except (ValueError, KeyError, TypeError, RecursionError):
        raise HTTPException(422, "send JSON {\"text\": \"...\"}: one text, as a string") from None
    return predictor.data_kind.apply(text, name="text"), predictor.data_kind.pieces(text)


def all_numbers(value, depth: int = 0) -> bool:
    """Nested lists of JSON numbers only (true and false are not pixels)."""
    if isinstance(value, list):
        return depth < 4 and all(all_numbers(v, depth + 1) for v in value)
    return isinstance(value, float)


def answer(predictor: Predictor, log_probs: torch.Tensor, shown: list) -> dict:
    """The response for one input: ``Predictor``'s answer, with every class's probability."""
    if not torch.isfinite(log_probs).all():  # never a label picked from NaN
        raise HTTPException(500, "the model's output for this input is not a number (NaN or infinite), so there "
                                 "is no answer; the model file may be damaged")
    (prediction,) = predictor.predictions(log_probs.float(), ["upload"], top_k=len(predictor.classes))
    probabilities = dict(prediction.top_k)
    return {"class_index": predictor.classes.index(prediction.label), "label": prediction.label,
            "probability": prediction.probability,
            "probabilities": {label: probabilities[label] for label in predictor.classes}, "model_input": shown}


# --- The app behind a public server's limits -------------------------------------------------------

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")
WILDCARD_HOSTS = ("0.0.0.0", "::", "")
# A Host header's (or an --allowed_hosts entry's) name, then its port: IPv6 in brackets, as in a URL.
HOST_AND_PORT = re.compile(r"(\[[0-9a-f:.]+\]|[^:\[\]]*)(:[0-9]*)?")
log = logging.getLogger(__name__)


class DeadlineH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with read deadlines, which uvicorn lacks: a request's headers must
    arrive within ``Limits.header_seconds`` of connecting or of its first byte, and its body within
    ``Limits.body_seconds`` after them; otherwise the connection is closed (slowloris)."""

    def __init__(self, *args, limits: Limits, **kwargs):
        super().__init__(*args, **kwargs)
        self.limits = limits
        self._deadline: asyncio.TimerHandle | None = None
        self._awaiting = None  # the client's h11 state the deadline is for: IDLE (headers) or SEND_BODY

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm(h11.IDLE, self.limits.header_seconds)

    def data_received(self, data: bytes) -> None:
        if self._deadline is None and self.conn.their_state is h11.IDLE:
            self._arm(h11.IDLE, self.limits.header_seconds)  # the next request on a kept-alive connection
        super().data_received(data)
        state = self.conn.their_state
        if state is not self._awaiting:
            self._disarm()
            if state is h11.SEND_BODY:
                self._arm(h11.SEND_BODY, self.limits.body_seconds)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self, state, seconds: float) -> None:
        self._disarm()
        self._awaiting, self._deadline = state, self.loop.call_later(seconds, self.transport.close)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._awaiting, self._deadline = None, None


def guarded(app, limits: Limits, allowed_hosts: list[str], any_address: bool):
    """The ASGI app behind the head limits and the allowed hosts. h11 caps only a head still
    incomplete after a read (its memory), so one that arrives whole in a single read of up to
    256 KB is measured here, request line (path and query) included."""
    async def guarded_app(scope, receive, send):
        refusal = refused(scope, limits, allowed_hosts, any_address) if scope["type"] == "http" else None
        await (refusal or app)(scope, receive, send)

    return guarded_app


def refused(scope, limits: Limits, allowed_hosts: list[str], any_address: bool) -> JSONResponse | None:
    """The answer refusing this request, or None to let it through."""
    headers = scope["headers"]
    head = len(scope.get("raw_path") or b"") + len(scope.get("query_string", b"")) + sum(
        len(k) + len(v) for k, v in headers)
    if len(headers) > limits.header_count:
        return JSONResponse({"detail": f"more than {limits.header_count} request headers"}, 431)
    if head > limits.header_bytes:
        return JSONResponse({"detail": f"request line and headers over {limits.header_bytes // 1024} KB"}, 431)
    header = next((value for key, value in headers if key == b"host"), b"").decode("latin-1")  # the first, as Starlette
    match = HOST_AND_PORT.fullmatch(header.lower())
    name = match[1] if match else ""
    if name and host_allowed(name, allowed_hosts, any_address):
        return None
    # One line a refusal (the header cut short and escaped): a server refusing its own users' name says why.
    log.warning("refused Host %r from %s", header[:200], (scope.get("client") or ("?",))[0])
    if not name:
        return JSONResponse({"detail": f"the Host header {header[:200]!r} is not a host name"}, 400)
    return JSONResponse({"detail": f"Host {name!r} is not one this server answers; start it with "
                                   f"--allowed_hosts {name} to allow it"}, 400)


def host_allowed(name: str, allowed_hosts: list[str], any_address: bool) -> bool:
    """Whether a Host name (lower-case, no port) is answered. Bound to all interfaces, any address
    literal is: DNS rebinding needs a name (the attacker's domain), which an address cannot be."""
    if any_address and is_address(name):
        return True
    return any(pattern in ("*", name) or (pattern.startswith("*.") and name.endswith(pattern[1:]))
               for pattern in allowed_hosts)


def is_address(name: str) -> bool:
    """An IPv4 address, or an IPv6 one in brackets, as a URL writes them."""
    try:
        address = ipaddress.ip_address(name[1:-1] if name.startswith("[") else name)
    except ValueError:
        return False
    return (address.version == 6) == name.startswith("[")


def unbracketed(host: str) -> str:
    """``--host`` as sockets take it: ``[::1]`` (as in a URL) is ``::1``."""
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def bracketed(name: str) -> str:
    """A host name as a Host header writes it: IPv6 in brackets."""
    return f"[{name}]" if ":" in name and not name.startswith("[") else name


def default_allowed_hosts(host: str) -> list[str]:
    """The Host names answered by default: the bound host, with the loopback names when bound there,
    and this machine's names when bound to all interfaces (where any address is answered too, see
    ``host_allowed``). Any other name is refused with 400, so that a DNS-rebinding page cannot read
    a server meant for this machine."""
    host = unbracketed(host).lower()
    if host in WILDCARD_HOSTS:
        names = [*LOOPBACK_HOSTS, socket.gethostname(), socket.getfqdn()]
    elif host == "localhost" or (is_address(bracketed(host)) and ipaddress.ip_address(host).is_loopback):
        names = [host, *LOOPBACK_HOSTS]
    else:
        names = [host]
    return list(dict.fromkeys(bracketed(name).lower() for name in names))


def allowed_hosts(flag: str | None, host: str) -> list[str]:
    """``--allowed_hosts`` (names separated by commas; ``*`` any; ``*.example.com`` its subdomains;
    IPv6 with or without brackets; no ports) as a list; without it, the default for the bound ``host``."""
    if flag is None:
        return default_allowed_hosts(host)
    names = [bracketed(name.strip().lower()) for name in flag.split(",") if name.strip()]
    for name in names:
        match = HOST_AND_PORT.fullmatch(name)
        bad_wildcard = "*" in name[1:] or (name.startswith("*") and name != "*" and not name.startswith("*."))
        if not match or match[2] is not None or bad_wildcard or (name.startswith("[") and not is_address(name)):
            raise UserError(f"--allowed_hosts: {name!r} is not a host name, an address, '*' or '*.domain', "
                            "written without a port (every port is answered)")
    if not names:
        raise UserError("--allowed_hosts: no host names given")
    return names


def build_server(app, allowed_hosts: list[str], limits: Limits = Limits(), any_address: bool = False) -> uvicorn.Server:
    """A uvicorn server for ``app`` that answers only ``allowed_hosts`` (and any address literal with
    ``any_address``, for a server bound to all interfaces) and holds clients to ``limits``.
    h11 rather than httptools: h11 caps the request head's bytes (httptools buffered a 60 MB header)."""
    config = uvicorn.Config(
        guarded(app, limits, allowed_hosts, any_address),
        http=functools.partial(DeadlineH11Protocol, limits=limits),
        # uvicorn counts connections and request tasks together, and a finished task leaves its count
        # a loop pass later: 64 busy connections counted up to 103 and got 503s under a limit of 100.
        h11_max_incomplete_event_size=limits.header_bytes, limit_concurrency=2 * limits.connections,
        timeout_keep_alive=limits.keep_alive_seconds, ws="none", lifespan="off", server_header=False,
        log_level="warning")
    return uvicorn.Server(config)


def listen(host: str, port: int) -> socket.socket:
    """A socket listening on ``host:port`` (before anything says it serves), or a one-line UserError."""
    try:
        family, _, _, _, address = socket.getaddrinfo(unbracketed(host), port, type=socket.SOCK_STREAM,
                                                      flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as e:
        raise UserError(f"--host {host}: not an address to listen on ({e.strerror})") from None
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: a restart need not wait for TIME_WAIT
    try:
        sock.bind(address)
        sock.listen(2048)  # uvicorn's backlog
    except OSError as e:
        sock.close()
        in_use = e.errno == errno.EADDRINUSE
        hint = "; another program listens there: stop it, or choose another --port" if in_use else ""
        raise UserError(f"cannot listen on {host}:{port}: {e.strerror}{hint}") from None
    return sock
