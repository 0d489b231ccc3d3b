"""Training throughput with 1 and 2 processes under torchrun, against one plain process.

    python benchmarks/bench_distributed.py [--epochs 3] [--threads 2] [--gpu] [--extra FLAGS...]

Every configuration trains the default MNIST model with the same global batch (256) and the same total
number of CPU threads (``--threads``, split between the processes), one after the other (never two at
once). The samples/s are training rows per second of training time (validation excluded), as rank 0
records them in the model file. "vs 1 process" is each configuration's throughput over the plain run's;
with the same threads in total, 1.0 would be perfect scaling. ``--gpu`` adds one GPU, plain and under
torchrun with NCCL (one process: NCCL cannot share one GPU between two).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def one_run(processes: int | None, threads: int, batch_size: int, epochs: int, gpu: bool, extra: list[str]) -> dict:
    """``processes`` None: ``train.py`` itself; else torchrun with that many, ``threads`` each."""
    with tempfile.TemporaryDirectory() as tmp:
        flags = ["--model_fn", f"{tmp}/m.pth", "--n_epochs", str(epochs), "--batch_size", str(batch_size),
                 "--seed", "0", "--gpu_id", "0" if gpu else "-1", *extra]
        launcher = [] if processes is None else ["-m", "torch.distributed.run", "--standalone",
                                                 f"--nproc_per_node={processes}"]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(ROOT)}
        started = time.perf_counter()
        done = subprocess.run([sys.executable, *launcher, str(ROOT / "train.py"), *flags], capture_output=True,
                              text=True, env=env, cwd=ROOT)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"failed ({processes} processes): {done.stderr[-2000:]}")
        saved = torch.load(f"{tmp}/m.pth", weights_only=True)
    history = saved["history"]
    train_seconds = sum(h["seconds"] - h["valid_seconds"] for h in history)
    accuracy = float(done.stdout.split("Test accuracy: ")[1].split("%")[0])
    return {"train_seconds": train_seconds, "wall": wall, "accuracy": accuracy,
            "epochs": len(history), "first_line": done.stdout.splitlines()[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads in total, split between processes")
    parser.add_argument("--gpu", action="store_true", help="also one GPU, plain and under torchrun (NCCL)")
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more mnist-train flags, last")
    args = parser.parse_args()
    global_batch = 256
    rows = []
    configurations = [("plain train.py", None, args.threads, global_batch, False),
                      ("torchrun, 1 process", 1, args.threads, global_batch, False),
                      ("torchrun, 2 processes", 2, max(args.threads // 2, 1), global_batch // 2, False)]
    if args.gpu:
        configurations += [("plain train.py, GPU", None, args.threads, global_batch, True),
                           ("torchrun, 1 process, GPU (NCCL)", 1, args.threads, global_batch, True)]
    for name, processes, threads, batch_size, gpu in configurations:
        result = one_run(processes, threads, batch_size, args.epochs, gpu, args.extra)
        # Training rows per epoch: from the first line, "train (48000, 1, 28, 28)".
        n_train = int(result["first_line"].split("train (")[1].split(",")[0])
        samples_per_s = n_train * result["epochs"] / result["train_seconds"]
        rows.append((name, processes or 1, threads, batch_size, gpu, samples_per_s, result))
        print(f"{name}: {samples_per_s:,.0f} samples/s, {result['accuracy']:.2f}%, {result['wall']:.1f} s wall",
              flush=True)

    print(f"\ntorch {torch.__version__}, {os.cpu_count()} CPUs, {args.epochs} epochs, global batch {global_batch}, "
          f"flags: {' '.join(args.extra) or '(defaults)'}")
    print("| configuration | processes x threads | batch per process | training samples/s | x plain | "
          "s per epoch | test accuracy % | whole run s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    baselines = {gpu: rate for name, _, _, _, gpu, rate, _ in rows if name.startswith("plain")}
    for name, processes, threads, batch_size, gpu, rate, result in rows:
        print(f"| {name} | {processes} x {threads} | {batch_size} | {rate:,.0f} | {rate / baselines[gpu]:.2f} | "
              f"{result['train_seconds'] / result['epochs']:.2f} | {result['accuracy']:.2f} | {result['wall']:.1f} |")


if __name__ == "__main__":
    main()
