"""Inference latency of one model in three runtimes, side by side: PyTorch eager, TorchScript and
onnxruntime (CPU), for a single input and a batch of 256.

    python benchmarks/bench_export.py [--models mlp cnn rnn] [--threads 2]

Each model is the registry's with its default options (weights as initialised: latency does not
depend on their values), exported by ``mnist_classifier.inference.export``. Each cell is the median
of up to a second of timed calls after warm-up calls; the runtimes run one after another.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mnist_classifier.inference.export import (  # noqa: E402
    build_onnx,
    build_torchscript,
    onnx_runner,
    torchscript_runner,
)
from mnist_classifier.models import MODELS  # noqa: E402

SHAPE = (1, 28, 28)


def runtimes(name: str) -> dict:
    model = MODELS[name].build(SHAPE, 10, classify=True).eval()
    example = torch.zeros(2, *SHAPE)

    def eager(x):
        with torch.inference_mode():
            return model(x)

    return {"PyTorch eager": eager,
            "TorchScript": torchscript_runner(build_torchscript(model, example, {})),
            "onnxruntime": onnx_runner(build_onnx(model, example, {}))}


def median_ms(run, x: torch.Tensor, budget_s: float = 1.0) -> float:
    for _ in range(3):
        run(x)
    times = []
    started = time.perf_counter()
    while len(times) < 5 or (time.perf_counter() - started < budget_s and len(times) < 2000):
        t = time.perf_counter()
        run(x)
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--threads", type=int, help="torch's CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| model | runtime | 1 input, ms | batch of 256, ms | batch of 256, inputs/s |")
    print("| --- | --- | --- | --- | --- |")
    for name in args.models:
        runs = runtimes(name)
        single, batch = torch.rand(1, *SHAPE), torch.rand(256, *SHAPE)
        for runtime, run in runs.items():
            one, many = median_ms(run, single), median_ms(run, batch)
            print(f"| {name} | {runtime} | {one:.3f} | {many:.2f} | {256 / many * 1000:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
