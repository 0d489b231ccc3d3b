"""A loopback load test of ``mnist-serve``: requests/s and p50/p99 latency of ``POST /predict``
(a 280x280 PNG drawing, as the page sends it) at 1, 8 and 32 concurrent clients, then a soak at
32 clients that must end without a single error.

    python benchmarks/bench_serve.py --model_fn model.pth [--seconds 10] [--soak 60] [--no-export]

The server runs as the command people run (one process, one worker) on a free port of 127.0.0.1;
the clients share this process (asyncio + httpx), so on 2 cores they compete with the server.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
from PIL import Image, ImageDraw


def drawing() -> bytes:
    """A '7' drawn as the page draws it: white strokes on black, 280x280, PNG."""
    image = Image.new("L", (280, 280), 0)
    ImageDraw.Draw(image).line([(70, 60), (210, 60), (120, 230)], fill=255, width=18, joint="curve")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


async def client(url: str, body: bytes, until: float, latencies: list, errors: list) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        while time.perf_counter() < until:
            started = time.perf_counter()
            try:
                response = await http.post(url, files={"file": ("drawing.png", body, "image/png")})
                ok = response.status_code == 200
            except httpx.HTTPError as e:
                ok, response = False, e
            latencies.append(time.perf_counter() - started)
            if not ok:
                errors.append(str(getattr(response, "status_code", response)))


async def load(url: str, clients: int, seconds: float) -> dict:
    latencies, errors, body = [], [], drawing()
    started = time.perf_counter()
    await asyncio.gather(*(client(url, body, started + seconds, latencies, errors) for _ in range(clients)))
    elapsed = time.perf_counter() - started
    cuts = statistics.quantiles(latencies, n=100)
    return {"clients": clients, "requests": len(latencies), "per_s": len(latencies) / elapsed,
            "p50_ms": 1000 * cuts[49], "p99_ms": 1000 * cuts[98], "errors": len(errors)}


def start_server(model_fn: str, use_export: bool) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-m", "mnist_classifier.cli.serve", "--model_fn", str(Path(model_fn).resolve()),
               "--port", str(port)]
    server = subprocess.Popen([*command, *([] if use_export else ["--no-export"])],
                              cwd=Path(__file__).resolve().parents[1])
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{base}/healthz").status_code == 200:
                return server, base
        except httpx.HTTPError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit("the server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_fn", required=True)
    parser.add_argument("--seconds", type=float, default=10, help="per concurrency level")
    parser.add_argument("--soak", type=float, default=60, help="seconds at 32 clients, 0 to skip")
    parser.add_argument("--no-export", dest="use_export", action="store_false",
                        help="PyTorch even where model.onnx lies beside the model file")
    args = parser.parse_args()
    server, base = start_server(args.model_fn, args.use_export)
    try:
        backend = httpx.get(f"{base}/model").json()["backend"]
        rows = [asyncio.run(load(f"{base}/predict", n, args.seconds)) for n in (1, 8, 32)]
        soak = asyncio.run(load(f"{base}/predict", 32, args.soak)) if args.soak else None
    finally:
        server.terminate()
        server.wait(timeout=10)
    print(f"\nbackend: {backend}\n| clients | requests | requests/s | p50 ms | p99 ms | errors |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows + ([soak] if soak else []):
        label = f"{r['clients']}" + (f" ({args.soak:.0f} s soak)" if r is soak else "")
        print(f"| {label} | {r['requests']:,} | {r['per_s']:,.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} "
              f"| {r['errors']} |")


if __name__ == "__main__":
    main()
