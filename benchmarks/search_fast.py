"""How `--preset fast` was chosen: candidate recipes of the seed's MLP family, each trained on the
training split and judged on the validation split only (the test set is never touched here).

    python benchmarks/search_fast.py [--seeds 0] [--target 98.3]          # every candidate on seed 0
    python benchmarks/search_fast.py --seeds 0 1 2 --only "256,256 x4" "512 x3"   # the quickest, on 3 seeds

Prints, per candidate, the validation accuracy of the best epoch and the training seconds
(validation included). The preset is the fastest candidate whose validation accuracy reaches
``--target`` on every seed: a margin above 98.0%, so that the test set, used once at the end with
``train.py --preset fast``, clears 98.0% too.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mnist_classifier.cli.train import load_configured_dataset, parse_config  # noqa: E402
from mnist_classifier.training.build import build_trainer  # noqa: E402
from mnist_classifier.utils import get_device, split_data  # noqa: E402

COMMON = ["--lr_schedule", "onecycle", "--label_smoothing", "0.1", "--train_ratio", "0.9"]


def recipe(name: str) -> list[str]:
    """Flags from a candidate's name: "512,512 x6 b512" is hidden sizes 512,512 for 6 epochs at batch
    512 (peak rate 5e-3 there, else 3e-3); "lr5e-3" sets the peak rate."""
    sizes, epochs, *rest = name.split()
    flags = ["--hidden_sizes", sizes, "--n_epochs", epochs.removeprefix("x")]
    lr = next((r.removeprefix("lr") for r in rest if r.startswith("lr")), "5e-3" if "b512" in rest else "3e-3")
    return flags + ["--lr", lr] + (["--batch_size", "512"] if "b512" in rest else [])


CANDIDATES = {name: recipe(name) for name in [
    "128 x6", "256 x4", "256 x5", "256 x6", "256,256 x4", "256,256 x5", "256,256 x8", "256,256 x10",
    "384,384 x6", "512 x2", "1024 x2", "384 x3", "512 x3", "512 x3 lr5e-3", "512 x3 b512", "512 x4",
    "512 x4 b512", "512 x6", "1024 x3", "1024 x4", "1024 x5", "512,512 x5", "512,512 x6", "512,512 x6 b512",
    "1024,1024 x3",
]}


def validate_recipe(flags: list[str], seed: int, data_dir: str) -> tuple[float, float]:
    """(best validation accuracy %, training seconds) of one candidate, without the test set."""
    config = parse_config(["--model_fn", "unused.pth", "--data_dir", data_dir, "--seed", str(seed),
                           "--verbose", "0", *COMMON, *flags])
    torch.manual_seed(seed)
    dataset = load_configured_dataset(config).prepared()
    train, valid = split_data(*dataset.train, config.train_ratio)
    trainer = build_trainer(config, dataset.input_shape, dataset.output_size, len(train[0]),
                            get_device(config.gpu_id), dataset.task, callbacks=[])
    history = trainer.train(train, valid, config.n_epochs, config.batch_size)
    return 100 * history[trainer.best_epoch - 1]["valid_accuracy"], sum(h["seconds"] for h in history)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--target", type=float, default=98.3, help="validation accuracy %% to reach")
    parser.add_argument("--only", nargs="+", choices=list(CANDIDATES), default=list(CANDIDATES))
    parser.add_argument("--data_dir", default="data")
    args = parser.parse_args()
    rows = []
    for name in args.only:
        results = [validate_recipe(CANDIDATES[name], seed, args.data_dir) for seed in args.seeds]
        accuracy, seconds = min(a for a, _ in results), statistics.median(s for _, s in results)
        rows.append((name, accuracy, seconds))
        print(f"{name:<18} valid {', '.join(f'{a:.2f}' for a, _ in results)}%  training {seconds:.1f} s", flush=True)
    print(f"\n| candidate ({' '.join(COMMON)}) | lowest valid accuracy % | training s (median) | reaches "
          f"{args.target}% |\n| --- | --- | --- | --- |")
    for name, accuracy, seconds in sorted(rows, key=lambda r: r[2]):
        print(f"| {name}: `{' '.join(CANDIDATES[name])}` | {accuracy:.2f} | {seconds:.1f} | "
              f"{'yes' if accuracy >= args.target else 'no'} |")


if __name__ == "__main__":
    main()
