"""Does ``--amp auto`` (the default) move accuracy or time? The default MNIST run with each ``--amp``
mode, seed by seed, interleaved (so a noisy moment hits every mode), on the same splits.

    python benchmarks/eval_amp.py [--seeds 0 1 2 3 4] [--modes auto off] [--extra --gpu_id 0]

Prints per mode: the precision ``auto`` chose, each seed's test accuracy, the median, the median
whole-run and training seconds, and the median per-seed ratio of wall time to ``off`` (fp32).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mnist_classifier.cli.train import parse_config, precision_words, run  # noqa: E402
from mnist_classifier.training.config import RunFacts  # noqa: E402


def one_run(mode: str, seed: int, data_dir: str, extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        config = parse_config(["--model_fn", f"{tmp}/m.pth", "--data_dir", data_dir, "--seed", str(seed),
                               "--verbose", "0", "--amp", mode, *extra])
        started = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            test = run(config)
        wall = time.perf_counter() - started
        saved = torch.load(f"{tmp}/m.pth", weights_only=True)
    return {"accuracy": 100 * test["accuracy"], "wall": wall, "training": saved["train_seconds"],
            "precision": precision_words(RunFacts.from_dict(saved["config"]))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--modes", nargs="+", choices=["auto", "on", "off"], default=["auto", "off"])
    parser.add_argument("--data_dir", default="data")
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more mnist-train flags, last")
    args = parser.parse_args()
    runs: dict[str, list[dict]] = {mode: [] for mode in args.modes}
    for seed in args.seeds:
        for mode in args.modes:
            result = one_run(mode, seed, args.data_dir, args.extra)
            runs[mode].append(result)
            print(f"seed {seed} --amp {mode}: {result['accuracy']:.2f}% in {result['wall']:.1f} s "
                  f"({result['precision']})", flush=True)

    print(f"\ntorch {torch.__version__}, {torch.get_num_threads()} threads, flags: {' '.join(args.extra) or '(none)'}")
    print("| `--amp` | precision chosen | test accuracy % per seed | median | min | training s | whole run s "
          "| wall / `off` |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for mode, results in runs.items():
        accuracies = [r["accuracy"] for r in results]
        ratio = "-"
        if "off" in runs:
            pairs = zip(results, runs["off"], strict=True)
            ratio = f"{statistics.median(r['wall'] / o['wall'] for r, o in pairs):.2f}"
        chosen = sorted({r["precision"] for r in results})
        print(f"| {mode} | {'; '.join(chosen)} | {', '.join(f'{a:.2f}' for a in accuracies)} | "
              f"{statistics.median(accuracies):.2f} | {min(accuracies):.2f} | "
              f"{statistics.median(r['training'] for r in results):.1f} | "
              f"{statistics.median(r['wall'] for r in results):.1f} | {ratio} |")


if __name__ == "__main__":
    main()
