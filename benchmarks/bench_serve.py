"""A loopback load test of ``mnist-serve``: requests/s and p50/p99 latency of ``POST /predict``
(a 280x280 PNG drawing in the multipart field ``file``, as the page sends it).

    python benchmarks/bench_serve.py --wrk [--seconds 60] [--connections 1 8 64] [--model_fn model.pth]
    python benchmarks/bench_serve.py [--model_fn model.pth] [--seconds 10] [--soak 60] [--no-export]

The server runs as the command people run (one process, one worker) on a free port of 127.0.0.1.
With ``--wrk`` the load comes from Debian's ``wrk`` (``apt-get install wrk``) in its own process,
pinned with ``taskset`` to another core than the server's where there are two; the table has
errors (non-2xx, socket errors, timeouts) and the server's RSS before and after each level.
Without it the clients are asyncio + httpx in this process (1, 8 and 32, then a soak at 32), so
on 2 cores they compete with the server. Without ``--model_fn``, the ``--preset fast`` MLP is built
with its initial weights (the time to answer does not depend on their values) and exported to ONNX.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
WRK_SCRIPT = Path(__file__).with_name("wrk_post.lua")
CLIENTS = (1, 8, 32)  # in-process httpx clients
WRK_CONNECTIONS = (1, 8, 64)  # the levels; server.Limits allows 100 (uvicorn counts request tasks too)
WRK_TIMEOUT_S = 2  # wrk's default: an answer later than this is a timeout, left out of the percentiles
DEFAULT_SECONDS = {"wrk": 60, "httpx": 10}  # per level


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


def start_server(model_fn: str, use_export: bool, prefix: list[str] = ()) -> tuple[subprocess.Popen, str]:
    """``mnist-serve`` on a free port, run after ``prefix`` (e.g. ``taskset -c 0``)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-m", "mnist_classifier.cli.serve", "--model_fn", str(Path(model_fn).resolve()),
               "--port", str(port)]
    server = subprocess.Popen([*prefix, *command, *([] if use_export else ["--no-export"])], cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{base}/healthz").status_code == 200:
                return server, base
        except httpx.HTTPError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit("the server did not start")


def small_model(folder: Path) -> Path:
    """The ``--preset fast`` MLP with its initial weights, saved as a model file, with its ONNX export
    beside it (made by ``mnist-export``, which checks it against PyTorch)."""
    import torch

    sys.path.insert(0, str(ROOT))
    from mnist_classifier.inference.model_file import save_model_file
    from mnist_classifier.models import MODELS
    from mnist_classifier.training.config import PRESETS

    torch.manual_seed(0)
    model = MODELS["mlp"].build((1, 28, 28), 10, classify=True, hidden_sizes=PRESETS["mlp"]["fast"]["hidden_sizes"])
    model_fn = folder / "fast.pth"
    save_model_file(model_fn, model.eval(), None, {})
    subprocess.run([sys.executable, "-m", "mnist_classifier.cli.export", "--model_fn", str(model_fn)], cwd=ROOT,
                   check=True, stdout=subprocess.DEVNULL)
    return model_fn


def cpu_plan() -> tuple[list[str], list[str]]:
    """Command prefixes that pin the server and wrk to different cores where there are two (this
    script, idle while wrk runs, joins wrk's); none where there is one."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2 or shutil.which("taskset") is None:
        return [], []
    server_cpu, client_cpu = cpus[0], cpus[1]
    os.sched_setaffinity(0, {client_cpu})
    return ["taskset", "-c", str(server_cpu)], ["taskset", "-c", str(client_cpu)]


def pinning(server_pid: int, wrk_prefix: list[str]) -> str:
    """What the pinning is, read back from the running server."""
    server_cpus = ",".join(map(str, sorted(os.sched_getaffinity(server_pid))))
    if not wrk_prefix:
        return f"not pinned (one core, or no taskset): the server and wrk share CPUs {server_cpus}"
    return f"server on CPU {server_cpus}, wrk (1 thread) on CPU {wrk_prefix[-1]} (taskset)"


def rss_mb(pid: int) -> float:
    """A process's resident memory now, in MB (Linux's /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def upload(url: str) -> tuple[bytes, str]:
    """The body and Content-Type of the page's request: the drawing as multipart field ``file``."""
    request = httpx.Request("POST", url, files={"file": ("drawing.png", drawing(), "image/png")})
    return request.read(), request.headers["content-type"]


def run_wrk(url: str, connections: int, seconds: int, body_fn: Path, content_type: str, prefix: list[str]) -> dict:
    """One wrk run at ``connections``; wrk's own report goes to stderr, its figures come back."""
    command = [*prefix, "wrk", "--threads", "1", "--connections", str(connections), "--duration", f"{seconds}s",
               "--timeout", f"{WRK_TIMEOUT_S}s", "--latency", "--script", str(WRK_SCRIPT), url, "--",
               str(body_fn), content_type]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    report, _, figures = done.stdout.rpartition("WRK_JSON ")
    print(report, file=sys.stderr)
    r = json.loads(figures)
    return {"connections": connections, "requests": r["requests"], "per_s": r["requests"] / (r["duration_us"] / 1e6),
            "p50_ms": r["p50_us"] / 1000, "p99_ms": r["p99_us"] / 1000, "statuses": r["non_2xx"],
            "non_2xx": sum(r["non_2xx"].values()),
            "socket": r["connect"] + r["read"] + r["write"], "timeouts": r["timeout"]}


def wrk_levels(args, model_fn: str) -> None:
    """The levels of ``--connections``, each from a fresh wrk, on one server; then the table."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    seconds = args.seconds or DEFAULT_SECONDS["wrk"]
    server_prefix, wrk_prefix = cpu_plan()
    server, base = start_server(model_fn, args.use_export, server_prefix)
    rows = []
    try:
        where = pinning(server.pid, wrk_prefix)
        backend = httpx.get(f"{base}/model").json()["backend"]
        body, content_type = upload(f"{base}/predict")
        for _ in range(20):  # warm-up, and proof that the body is answered
            response = httpx.post(f"{base}/predict", content=body, headers={"content-type": content_type})
            response.raise_for_status()
        with tempfile.TemporaryDirectory() as folder:
            body_fn = Path(folder) / "body"
            body_fn.write_bytes(body)
            for n in args.connections or WRK_CONNECTIONS:
                before = rss_mb(server.pid)
                row = run_wrk(f"{base}/predict", n, seconds, body_fn, content_type, wrk_prefix)
                # wrk stops with requests in flight; this answer queues behind them, so the next
                # level starts on an idle server and the RSS is read after the last of them.
                httpx.get(f"{base}/healthz", timeout=60).raise_for_status()
                rows.append({**row, "rss_before": before, "rss_after": rss_mb(server.pid)})
    finally:
        server.terminate()
        server.wait(timeout=10)
    version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split(" [")[0]
    print(f"\n{version}, {seconds} s per level, timeout {WRK_TIMEOUT_S} s (later answers count as timeouts, not in "
          f"the percentiles); {where}; backend {backend}; "
          f"body: a 280x280 PNG drawing as multipart field 'file' ({len(body):,} bytes)\n")
    print_wrk_table(rows)


def print_wrk_table(rows: list[dict]) -> None:
    print("| connections | requests | requests/s | p50 ms | p99 ms | non-2xx | socket errors | timeouts "
          "| server RSS before -> after (MB) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['connections']} | {r['requests']:,} | {r['per_s']:,.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} "
              f"| {non_2xx(r['statuses'])} | {r['socket']} | {r['timeouts']} "
              f"| {r['rss_before']:.1f} -> {r['rss_after']:.1f} |")
    errors = sum(r["non_2xx"] + r["socket"] + r["timeouts"] for r in rows)
    at_8 = [r for r in rows if r["connections"] == 8]
    goal = (f"p99 at 8 connections {at_8[0]['p99_ms']:.1f} ms (goal under 20 ms: "
            f"{'met' if at_8[0]['p99_ms'] < 20 else 'missed'}); " if at_8 else "")
    print(f"\n{goal}errors {errors} (goal 0); server RSS {rows[0]['rss_before']:.1f} MB before the first level, "
          f"{rows[-1]['rss_after']:.1f} MB after the last")


def non_2xx(statuses: dict) -> str:
    """``21 (503: 21)``: how many answers were not 2xx, and their statuses."""
    total = sum(statuses.values())
    return f"{total} ({', '.join(f'{s}: {n}' for s, n in sorted(statuses.items()))})" if total else "0"


def httpx_levels(args, model_fn: str) -> None:
    seconds = args.seconds or DEFAULT_SECONDS["httpx"]
    server, base = start_server(model_fn, args.use_export)
    try:
        backend = httpx.get(f"{base}/model").json()["backend"]
        rows = [asyncio.run(load(f"{base}/predict", n, seconds)) for n in CLIENTS]
        soak = asyncio.run(load(f"{base}/predict", CLIENTS[-1], args.soak)) if args.soak else None
    finally:
        server.terminate()
        server.wait(timeout=10)
    print(f"\nbackend: {backend}\n| clients | requests | requests/s | p50 ms | p99 ms | errors |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows + ([soak] if soak else []):
        label = f"{r['clients']}" + (f" ({args.soak:.0f} s soak)" if r is soak else "")
        print(f"| {label} | {r['requests']:,} | {r['per_s']:,.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} "
              f"| {r['errors']} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_fn", help="the model to serve (default: the --preset fast MLP, built untrained)")
    parser.add_argument("--wrk", action="store_true", help="load from wrk in its own process, pinned to its own core")
    defaults = ", ".join(f"{s} with {mode}" for mode, s in DEFAULT_SECONDS.items())
    parser.add_argument("--seconds", type=int, help=f"per level (default: {defaults})")
    parser.add_argument("--connections", type=int, nargs="+",
                        help=f"wrk's connections per level (default: {' '.join(map(str, WRK_CONNECTIONS))})")
    parser.add_argument("--soak", type=float, default=60, help="seconds at 32 httpx clients, 0 to skip")
    parser.add_argument("--no-export", dest="use_export", action="store_false",
                        help="PyTorch even where model.onnx lies beside the model file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        model_fn = args.model_fn or str(small_model(Path(folder)))
        if args.wrk:
            return wrk_levels(args, model_fn)
        httpx_levels(args, model_fn)


if __name__ == "__main__":
    main()
