"""Test-set results per dataset and model, from the command line each README section shows.

    python benchmarks/eval_datasets.py [--seeds 0 1 2] [--only digits diabetes]
    python benchmarks/eval_datasets.py --only "mnist cnn" "mnist rnn"     # the model families' table

Diabetes is compared with scikit-learn's LinearRegression fitted on the same training rows.
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
from mnist_classifier.cli.train import parse_config, run  # noqa: E402
from mnist_classifier.kinds import load_dataset  # noqa: E402

# The flags each README section documents, beyond --dataset.
COMMANDS = {
    "mnist": [],
    "mnist fast": ["--preset", "fast"],
    "mnist cnn": ["--model", "cnn"],
    "mnist cnn record": ["--model", "cnn", "--preset", "record"],
    "mnist rnn": ["--model", "rnn"],
    "fashion-mnist cnn": ["--model", "cnn", "--hflip"],
    "fashion-mnist cnn recipe": ["--model", "cnn", "--hflip", "--channels", "32,64,128", "--n_epochs", "20"],
    "fashion-mnist": [],
    "fashion-mnist recipe": ["--n_epochs", "60", "--hidden_sizes", "1024,1024", "--label_smoothing", "0.1",
                             "--weight_decay", "1e-2", "--hflip", "--shift_px", "1"],
    "digits": ["--batch_size", "32", "--n_epochs", "60", "--hidden_sizes", "256,128", "--weight_decay", "1e-2",
               "--label_smoothing", "0.1"],
    "diabetes": ["--hidden_sizes", "16", "--use_dropout", "--dropout_p", "0.5", "--lr", "3e-3",
                 "--n_epochs", "300", "--batch_size", "32"],
}


def linear_regression_rmse(name: str) -> float:
    """The baseline: ordinary least squares on the same training rows (before our validation cut)."""
    import numpy as np
    from sklearn.linear_model import LinearRegression

    dataset = load_dataset(name).prepared()
    (x, y), (x_test, y_test) = dataset.train, dataset.test
    predicted = LinearRegression().fit(x.numpy(), y.numpy()).predict(x_test.numpy())
    return float(np.sqrt(((predicted - y_test.numpy()) ** 2).mean()) * dataset.preprocessing["y_std"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--only", nargs="+", choices=list(COMMANDS), default=list(COMMANDS))
    parser.add_argument("--data_dir", default="data")
    args = parser.parse_args()

    print("| command | metric | per seed | median | training s (median) | whole run s (median) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for label in args.only:
        name = label.split()[0]
        values, seconds, training = [], [], []
        for seed in args.seeds:
            with tempfile.TemporaryDirectory() as tmp:
                config = parse_config(["--model_fn", f"{tmp}/m.pth", "--dataset", name, "--data_dir", args.data_dir,
                                       "--seed", str(seed), "--verbose", "0", *COMMANDS[label]])
                started = time.perf_counter()
                with contextlib.redirect_stdout(io.StringIO()):
                    test = run(config)
                seconds.append(time.perf_counter() - started)
                training.append(torch.load(f"{tmp}/m.pth", weights_only=True)["train_seconds"])
            values.append(test["accuracy"] * 100 if "accuracy" in test else test["rmse"])
        metric = "test accuracy %" if "accuracy" in test else "test RMSE"
        command = " ".join(["--dataset", name, *COMMANDS[label]])
        print(f"| `{command}` | {metric} | {', '.join(f'{v:.2f}' for v in values)} | "
              f"{statistics.median(values):.2f} | {statistics.median(training):.0f} | "
              f"{statistics.median(seconds):.0f} |", flush=True)
        if name == "diabetes":
            print(f"| scikit-learn `LinearRegression`, same split | test RMSE | | "
                  f"{linear_regression_rmse(name):.2f} | | |", flush=True)


if __name__ == "__main__":
    main()
