"""Choose the table defaults on validation data: each candidate recipe on every set of eval_tables.py.

    python benchmarks/search_tables.py [--seeds 0 1] [--datasets iris diabetes ...]

Every candidate trains through mnist-train (in this process, to skip start-up) on the training
part of eval_tables.py's split, and is scored on its own validation rows only (the best epoch's
validation accuracy, or 1 - validation MSE in standardised units, which is about the validation
R^2): the test rows that eval_tables.py reports never choose anything. The recipe with the best
mean rank over the sets became ``TABLE_DEFAULTS`` in mnist_classifier/kinds/tables.py.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_tables import DATASETS, write_split  # noqa: E402

from mnist_classifier.cli import train  # noqa: E402
from mnist_classifier.training import config as config_module  # noqa: E402

# Flags on top of the current defaults; "steps" changes the table schedule's target step count.
CANDIDATES = {
    "defaults": {},
    "batch norm": {"flags": ["--no-use_dropout"]},
    "dropout 0.3": {"flags": ["--dropout_p", "0.3"]},
    "lr 3e-3": {"flags": ["--lr", "3e-3"]},
    "128,128": {"flags": ["--hidden_sizes", "128,128"]},
    "512,256,128": {"flags": ["--hidden_sizes", "512,256,128"]},
    "wd 1e-2": {"flags": ["--weight_decay", "1e-2"]},
    "1000 steps": {"steps": 1000},
    "4000 steps": {"steps": 4000},
}


def validation_score(model_fn: Path, task: str) -> float:
    saved = torch.load(model_fn, weights_only=True)
    best = saved["history"][saved["best_epoch"] - 1]
    return 100 * best["valid_accuracy"] if task == "classification" else 1 - best["valid_loss"]


def run(train_csv: Path, test_csv: Path, task: str, seed: int, candidate: dict, folder: Path) -> tuple[float, float]:
    model_fn = folder / "m.pth"
    # The test file is given so that training gets the rows it gets in eval_tables.py; its score is not read.
    # The recipes are the MLP's table defaults: --model mlp, not the tables' auto, whose linear model they skip.
    flags = ["--dataset", f"csv:{train_csv}", "--test_csv", str(test_csv), "--model_fn", str(model_fn),
             "--seed", str(seed), "--verbose", "0", "--model", "mlp",
             *(["--task", "regression"] if task == "regression" else []), *candidate.get("flags", [])]
    steps = config_module.TABLE_STEPS
    config_module.TABLE_STEPS = candidate.get("steps", steps)
    started = time.perf_counter()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            train.main(flags)
    finally:
        config_module.TABLE_STEPS = steps
    return validation_score(model_fn, task), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--datasets", nargs="+", choices=list(DATASETS), default=list(DATASETS))
    parser.add_argument("--candidates", nargs="+", choices=list(CANDIDATES), default=list(CANDIDATES))
    args = parser.parse_args()
    scores: dict[str, dict[str, list[float]]] = {c: {} for c in args.candidates}
    seconds: dict[str, float] = {c: 0.0 for c in args.candidates}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.datasets:
            task, make = DATASETS[name]
            frame = make()
            for seed in args.seeds:
                folder = Path(tmp) / f"{name}-{seed}"
                folder.mkdir()
                train_csv, test_csv = write_split(frame, task, seed, folder)
                for candidate in args.candidates:
                    score, took = run(train_csv, test_csv, task, seed, CANDIDATES[candidate], folder)
                    scores[candidate].setdefault(name, []).append(score)
                    seconds[candidate] = max(seconds[candidate], took)
                    print(f"{name} seed {seed} {candidate}: {score:.3f} ({took:.1f}s)", file=sys.stderr, flush=True)
    report(scores, seconds, args.datasets)


def report(scores: dict, seconds: dict, datasets: list[str]) -> None:
    means = {c: {d: statistics.mean(v) for d, v in per.items()} for c, per in scores.items()}
    ranks = {c: [] for c in scores}
    for d in datasets:
        ordered = sorted(scores, key=lambda c: -means[c][d])
        for rank, c in enumerate(ordered, start=1):
            ranks[c].append(rank)
    print("| recipe | " + " | ".join(datasets) + " | mean rank | slowest s |")
    print("| --- |" + " --- |" * (len(datasets) + 2))
    for c in sorted(scores, key=lambda c: statistics.mean(ranks[c])):
        cells = " | ".join(f"{means[c][d]:.3f}" for d in datasets)
        print(f"| {c} | {cells} | {statistics.mean(ranks[c]):.2f} | {seconds[c]:.1f} |")
    print("\nValidation accuracy (%) for classification sets, 1 - validation MSE (standardised) for regression; "
          "mean over seeds.")


if __name__ == "__main__":
    main()
