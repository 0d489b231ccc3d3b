"""Training speed side by side, in one process: the tightest loop, this project's Trainer, the
DataLoader tutorial style (pytorch/examples' mnist loop) and PyTorch Lightning, on one model and
the same 48,000/12,000 MNIST split; plus the machine's float32 matrix-multiply peak.

    python benchmarks/bench_speed.py --epochs 3 [--repeats 3] [--model cnn] [--json speed.json] [--full_runs]

``--model`` picks the registry's model with its default options (the seed's MLP by default); every
variant trains that same model with the same batch size.

The machine is noisy, so the variants are interleaved and repeated: each round runs every
variant for ``--epochs`` epochs, takes its median epoch after the first (warm-up) epoch, and
divides by ``bare`` of the same round. The table shows the median over rounds.

``--full_runs`` also times whole ``train.py`` runs (20 epochs, validation, saving and testing
included) with each speed flag, ``--compile`` with an empty compile cache and again with the
cache the first run filled.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mnist_classifier.data.mnist import load_mnist  # noqa: E402
from mnist_classifier.models import MODELS  # noqa: E402
from mnist_classifier.training.build import build_trainer  # noqa: E402
from mnist_classifier.training.config import TrainConfig  # noqa: E402

BATCH_SIZE = 256
MODEL = "mlp"  # set from --model
IMAGES = (1, 28, 28)


def seed_model() -> nn.Module:
    """The benchmarked model, as a tutorial would build it: default options, no memory-format tricks."""
    return MODELS[MODEL].build(IMAGES, 10, classify=True)


def matmul_gflops(n: int = 2048, repeats: int = 10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    started = time.perf_counter()
    for _ in range(repeats):
        torch.mm(a, b)
    return 2 * n**3 * repeats / (time.perf_counter() - started) / 1e9


def plain_setup():
    """The seed's model, Adam as tutorials create it, and NLLLoss."""
    model = seed_model()
    return model, torch.optim.Adam(model.parameters(), lr=1e-3), nn.NLLLoss()


def plain_step(model, optimizer, crit, x, y) -> None:
    loss = crit(model(x), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def run_bare(data, epochs: int, **_) -> list[tuple[float, float]]:
    """The practical ceiling: randperm + index + split, forward, loss, zero_grad, backward, step."""
    (x, y), _valid = data
    model, optimizer, crit = plain_setup()
    times = []
    for _ in range(epochs):
        started = time.perf_counter()
        model.train()
        for idx in torch.randperm(len(x)).split(BATCH_SIZE):
            plain_step(model, optimizer, crit, x[idx], y[idx])
        times.append((time.perf_counter() - started, 0.0))
    return times


def run_project(data, epochs: int, compile: bool = False, amp: bool = False, **_) -> list[tuple[float, float]]:
    """This project's Trainer, built exactly as train.py builds it, validation included."""
    train, valid = data
    config = TrainConfig(model_fn="unused", n_epochs=epochs, verbose=0, compile=compile, amp=amp, model=MODEL,
                         model_options={})
    config.validate()
    trainer = build_trainer(config, IMAGES, 10, len(train[0]), torch.device("cpu"), callbacks=[])
    history = trainer.train(train, valid, epochs, BATCH_SIZE)
    return [(h["seconds"], h["valid_seconds"]) for h in history]


def run_dataloader(data, epochs: int, data_dir: str = "data", split=None, **_) -> list[tuple[float, float]]:
    """The tutorial style most copied MNIST code uses: torchvision MNIST, ToTensor, DataLoader."""
    from torch.utils.data import DataLoader, Subset
    from torchvision import datasets, transforms

    dataset = datasets.MNIST(data_dir, train=True, transform=transforms.ToTensor())
    train_idx, valid_idx = split
    train_loader = DataLoader(Subset(dataset, train_idx.tolist()), batch_size=BATCH_SIZE, shuffle=True)
    valid_loader = DataLoader(Subset(dataset, valid_idx.tolist()), batch_size=BATCH_SIZE)
    model, optimizer, crit = plain_setup()
    times = []
    for _ in range(epochs):
        started = time.perf_counter()
        model.train()
        for x, y in train_loader:
            plain_step(model, optimizer, crit, x, y)
        valid_started = time.perf_counter()
        model.eval()
        with torch.no_grad():
            for x, y in valid_loader:
                crit(model(x), y)
        now = time.perf_counter()
        times.append((now - started, now - valid_started))
    return times


def run_lightning(data, epochs: int, **_) -> list[tuple[float, float]]:
    """PyTorch Lightning's Trainer on the same model and in-memory tensors; extras off."""
    import lightning as L
    from torch.utils.data import DataLoader, TensorDataset

    class Classifier(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.model, self.crit = seed_model(), nn.NLLLoss()

        def training_step(self, batch, _):
            return self.crit(self.model(batch[0]), batch[1])

        def validation_step(self, batch, _):
            return self.crit(self.model(batch[0]), batch[1])

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=1e-3)

    class EpochTimer(L.Callback):
        def __init__(self):
            self.times, self.valid = [], []

        def on_train_epoch_start(self, *_):
            self.started = time.perf_counter()

        def on_validation_start(self, *_):
            self.valid_started = time.perf_counter()

        def on_validation_end(self, *_):
            self.valid.append(time.perf_counter() - self.valid_started)

        def on_train_epoch_end(self, *_):
            self.times.append(time.perf_counter() - self.started)

    (x, y), (xv, yv) = data
    timer = EpochTimer()
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                        callbacks=[timer])
    trainer.fit(Classifier(), DataLoader(TensorDataset(x, y), batch_size=BATCH_SIZE, shuffle=True),
                DataLoader(TensorDataset(xv, yv), batch_size=BATCH_SIZE))
    return list(zip(timer.times, timer.valid, strict=True))


VARIANTS = {
    "bare": run_bare,
    "project": run_project,
    "project --compile": lambda data, epochs, **kw: run_project(data, epochs, compile=True),
    "project --amp": lambda data, epochs, **kw: run_project(data, epochs, amp=True),
    "project --compile --amp": lambda data, epochs, **kw: run_project(data, epochs, compile=True, amp=True),
    "dataloader": run_dataloader,
    "lightning": run_lightning,
}


FULL_RUNS = [  # (label, flags, compile cache: None, "empty" or "filled" by the run before)
    ("eager (the default)", [], None),
    ("--compile, empty cache", ["--compile"], "empty"),
    ("--compile, cache filled", ["--compile"], "filled"),
    ("--amp", ["--amp"], None),
    ("--compile --amp, empty cache", ["--compile", "--amp"], "empty"),
    ("--compile --amp, cache filled", ["--compile", "--amp"], "filled"),
]


def full_runs(data_dir: str, epochs: int = 20) -> list[dict]:
    """Wall time of whole train.py runs, from start to the printed test accuracy."""
    root = Path(__file__).resolve().parents[1]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, flags, cache in FULL_RUNS:
            env = dict(os.environ)
            if cache:
                # Each flag set gets its own cache folder: empty on its first run, filled on the next.
                env["TORCHINDUCTOR_CACHE_DIR"] = f"{tmp}/inductor{'-'.join(flags)}"
            command = [sys.executable, str(root / "train.py"), "--model_fn", f"{tmp}/m.pth", "--data_dir", data_dir,
                       "--n_epochs", str(epochs), "--seed", "0", "--verbose", "0", *flags]
            started = time.perf_counter()
            out = subprocess.run(command, capture_output=True, text=True, env=env, check=True).stdout
            seconds = time.perf_counter() - started
            accuracy = re.search(r"Test accuracy: ([\d.]+)%", out).group(1)
            rows.append({"run": label, "wall_s": seconds, "test_accuracy": float(accuracy)})
            print(f"full run: {label:<30} {seconds:.1f} s, test accuracy {accuracy}%", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3, help="epochs per variant per round, the first is warm-up")
    parser.add_argument("--repeats", type=int, default=1, help="rounds of all variants")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--data_dir", default="data")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--full_runs", action="store_true", help="also time whole 20-epoch train.py runs")
    parser.add_argument("--model", choices=list(MODELS), default="mlp", help="the model every variant trains")
    args = parser.parse_args()
    global MODEL
    MODEL = args.model
    if "bare" not in args.variants:
        args.variants.insert(0, "bare")

    torch.manual_seed(0)
    x, y = load_mnist(data_dir=args.data_dir, flatten=False)
    x = x.unsqueeze(1)  # (N, 1, 28, 28): every model reads images in their natural shape
    split = torch.randperm(len(x)).split([48000, 12000])
    data = ((x[split[0]], y[split[0]]), (x[split[1]], y[split[1]]))
    peak = matmul_gflops()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, matmul peak {peak:.0f} GFLOP/s, "
          f"model {MODEL}", flush=True)

    epoch_s = {name: [] for name in args.variants}
    valid_s = {name: [] for name in args.variants}
    ratios = {name: [] for name in args.variants}
    for round_ in range(args.repeats):
        order = args.variants[round_ % len(args.variants):] + args.variants[: round_ % len(args.variants)]
        measured = {}
        for name in order:
            times = VARIANTS[name](data, args.epochs, data_dir=args.data_dir, split=split)
            steady = times[1:] or times
            measured[name] = statistics.median(t for t, _ in steady)
            epoch_s[name].append(measured[name])
            valid_s[name].append(statistics.median(v for _, v in steady))
            print(f"round {round_ + 1}: {name:<18} {measured[name]:.2f} s/epoch (first epoch {times[0][0]:.1f} s)",
                  flush=True)
        for name in order:
            ratios[name].append(measured["bare"] / measured[name])

    # 6 flops per weight per sample: forward, weight gradient, input gradient (one matmul each).
    weights = sum(p.numel() for p in seed_model().parameters() if p.dim() == 2)
    rows = []
    for name in args.variants:
        seconds = statistics.median(epoch_s[name])
        rows.append({
            "variant": name,
            "epoch_s": seconds,
            "valid_s": statistics.median(valid_s[name]),
            "samples_per_s": 48000 / seconds,
            "ratio_to_bare": statistics.median(ratios[name]),
            # Only an MLP's work is all matrix multiplication.
            "fraction_of_peak": 6 * weights * 48000 / seconds / 1e9 / peak if MODEL == "mlp" else None,
        })
    print("\n| variant | s/epoch | of which validation | train samples/s | x bare | of matmul peak |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        of_peak = "-" if r["fraction_of_peak"] is None else f"{r['fraction_of_peak']:.0%}"
        print(f"| {r['variant']} | {r['epoch_s']:.2f} | {r['valid_s']:.2f} | {r['samples_per_s']:,.0f} "
              f"| {r['ratio_to_bare']:.2f} | {of_peak} |")
    full = full_runs(args.data_dir) if args.full_runs else []
    if full:
        print("\n| 20-epoch train.py run | wall time | test accuracy |\n| --- | --- | --- |")
        for r in full:
            print(f"| {r['run']} | {r['wall_s']:.1f} s | {r['test_accuracy']:.2f}% |")
    if args.json:
        Path(args.json).write_text(json.dumps({"matmul_gflops": peak, "epochs": args.epochs, "repeats": args.repeats,
                                               "rows": rows, "full_runs": full}, indent=2))


if __name__ == "__main__":
    main()
