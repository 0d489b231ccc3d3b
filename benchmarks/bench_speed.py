"""Training speed side by side, in one process: the tightest loop, this project's Trainer, the
DataLoader tutorial style (pytorch/examples' mnist loop) and PyTorch Lightning, on one model and
the same 48,000/12,000 MNIST split; beside them the ceilings: the machine's float32 and bfloat16
matrix-multiply speed at the model's own shapes.

    python benchmarks/bench_speed.py --epochs 3 [--repeats 3] [--model cnn] [--device cuda] [--threads 2]
                                     [--json speed.json] [--full_runs] [--profile]

``--model`` picks the registry's model with its default options (the seed's MLP by default); every
variant trains that same model with the same batch size.

The machine is noisy, so the variants are interleaved and repeated: each round runs every
variant for ``--epochs`` epochs, takes its median epoch after the first (warm-up) epoch, and
divides by ``bare`` of the same round. The table shows the median over rounds.

Ceilings (MLP only, whose work is all matrix products): for every Linear layer, the three products
of a training step at batch 256 (forward, input gradient, weight gradient), timed alone; their sum
is the fastest any loop could run a step in that precision. A loop's "of ceiling" is its samples/s
over the ceiling's.

``--profile`` runs the project's training step under torch.profiler and prints where its time goes,
grouped (matrix products, optimizer, BatchNorm, activations, casts, ...).

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
from mnist_classifier.training.config import RunFacts, TrainConfig  # noqa: E402
from mnist_classifier.training.precision import cpu_has_bf16_kernels  # noqa: E402

BATCH_SIZE = 256
MODEL = "mlp"  # set from --model
DEVICE = torch.device("cpu")  # set from --device
IMAGES = (1, 28, 28)


def seed_model() -> nn.Module:
    """The benchmarked model, as a tutorial would build it: default options, no memory-format tricks."""
    return MODELS[MODEL].build(IMAGES, 10, classify=True).to(DEVICE)


def sync() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize(DEVICE)


def timed(work, budget_s: float = 0.5) -> float:
    """Seconds per call of ``work``: a warm-up call, then as many as fit in ``budget_s`` (at most 50).
    Where one call alone takes longer than the budget (bfloat16 on a CPU without its kernels runs
    about 100x slower), the warm-up call is the measurement."""
    sync()
    started = time.perf_counter()
    work()
    sync()
    first = time.perf_counter() - started
    repeats = min(50, int(budget_s / max(first, 1e-9)))
    if repeats < 2:
        return first
    started = time.perf_counter()
    for _ in range(repeats):
        work()
    sync()
    return (time.perf_counter() - started) / repeats


def matmul_gflops(dtype: str, n: int = 2048) -> float:
    """The square-matrix peak, for context."""
    a, b = (torch.randn(n, n, device=DEVICE).to(getattr(torch, dtype)) for _ in range(2))
    if DEVICE.type == "cpu" and dtype == "bfloat16" and not cpu_has_bf16_kernels():
        a, b = a[:512, :512], b[:512, :512]  # 2048 would take a minute here
        n = 512
    return 2 * n**3 / timed(lambda: torch.mm(a, b)) / 1e9


def step_matmuls(dtype) -> list:
    """The three matrix products per Linear layer of one training step at BATCH_SIZE."""
    work = []
    for layer in seed_model().modules():
        if isinstance(layer, nn.Linear):
            out_f, in_f = layer.weight.shape
            x = torch.randn(BATCH_SIZE, in_f, device=DEVICE, dtype=dtype)
            w = torch.randn(out_f, in_f, device=DEVICE, dtype=dtype)
            g = torch.randn(BATCH_SIZE, out_f, device=DEVICE, dtype=dtype)
            work += [(x, w.t()), (g, w), (g.t(), x)]  # forward, input gradient, weight gradient
    return work


def ceiling_samples_per_s(dtype) -> float:
    """Training samples/s if a step were nothing but its matrix products, each run alone."""
    products = step_matmuls(dtype)
    return BATCH_SIZE / timed(lambda: [a @ b for a, b in products])


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
        for idx in torch.randperm(len(x), device=DEVICE).split(BATCH_SIZE):
            plain_step(model, optimizer, crit, x[idx], y[idx])
        sync()
        times.append((time.perf_counter() - started, 0.0))
    return times


def project_trainer(n_train: int, epochs: int, compile: bool = False, amp: str = "auto"):
    """This project's Trainer, built exactly as train.py builds it."""
    config = TrainConfig(model_fn="unused", n_epochs=epochs, verbose=0, compile=compile, amp=amp, model=MODEL,
                         model_options={}, gpu_id=0 if DEVICE.type == "cuda" else -1)
    facts = RunFacts()  # the precision build_trainer chooses
    trainer = build_trainer(config.validate(), IMAGES, 10, n_train, DEVICE, callbacks=[], facts=facts)
    return trainer, facts


def run_project(data, epochs: int, compile: bool | str = False, amp: str = "auto", **_) -> list[tuple[float, float]]:
    """This project's Trainer, validation included."""
    train, valid = data
    trainer, facts = project_trainer(len(train[0]), epochs, bool(compile), amp)
    if compile == "default":  # without the CUDA graphs the Trainer asks for on a GPU
        trainer._forward = torch.compile(trainer.model, dynamic=False)
    PRECISIONS[(bool(compile), amp)] = facts.precision
    history = trainer.train(train, valid, epochs, BATCH_SIZE)
    return [(h["seconds"], h["valid_seconds"]) for h in history]


PRECISIONS: dict = {}  # what each project variant ran in, for the table


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


def run_lightning(data, epochs: int, precision: str = "32-true", **_) -> list[tuple[float, float]]:
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
    x, y, xv, yv = (t.cpu() for t in (x, y, xv, yv))  # Lightning moves each batch to the device itself
    trainer = L.Trainer(max_epochs=epochs, accelerator="gpu" if DEVICE.type == "cuda" else "cpu", devices=1,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0, callbacks=[timer], precision=precision)
    trainer.fit(Classifier(), DataLoader(TensorDataset(x, y), batch_size=BATCH_SIZE, shuffle=True),
                DataLoader(TensorDataset(xv, yv), batch_size=BATCH_SIZE))
    return list(zip(timer.times, timer.valid, strict=True))


VARIANTS = {
    "bare": run_bare,
    "project": run_project,  # the default: --amp auto
    "project --amp off": lambda data, epochs, **kw: run_project(data, epochs, amp="off"),
    "project --amp on": lambda data, epochs, **kw: run_project(data, epochs, amp="on"),
    "project --compile": lambda data, epochs, **kw: run_project(data, epochs, compile=True),
    "project --compile --amp on": lambda data, epochs, **kw: run_project(data, epochs, compile=True, amp="on"),
    "project --compile, default mode": lambda data, epochs, **kw: run_project(data, epochs, compile="default"),
    "dataloader": run_dataloader,
    "lightning": run_lightning,
    "lightning bf16-mixed": lambda data, epochs, **kw: run_lightning(data, epochs, precision="bf16-mixed"),
}
DEFAULT_VARIANTS = ["bare", "project", "project --amp off", "project --amp on", "project --compile", "dataloader",
                    "lightning", "lightning bf16-mixed"]


FULL_RUNS = [  # (label, flags, compile cache: None, "empty" or "filled" by the run before)
    ("the default (--amp auto)", [], None),
    ("--amp off", ["--amp", "off"], None),
    ("--amp on", ["--amp", "on"], None),
    ("--compile, empty cache", ["--compile"], "empty"),
    ("--compile, cache filled", ["--compile"], "filled"),
]


def full_runs(data_dir: str, epochs: int = 20) -> list[dict]:
    """Wall time of whole train.py runs, from start to the printed test accuracy."""
    root = Path(__file__).resolve().parents[1]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, flags, cache in FULL_RUNS:
            if "on" in flags and not cpu_has_bf16_kernels() and not torch.cuda.is_available():
                continue  # bfloat16 without its kernels: many minutes for nothing
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


PROFILE_GROUPS = {  # torch.profiler op names -> what they are, first match wins
    "matrix products": ("addmm", "mm", "bmm", "matmul", "linear", "convolution", "conv", "mkldnn_rnn", "gru", "lstm"),
    "optimizer": ("adam", "foreach", "optimizer", "lerp"),
    "BatchNorm": ("batch_norm",),
    "LeakyReLU": ("leaky_relu",),
    "LogSoftmax and loss": ("log_softmax", "nll", "cross_entropy"),
    "casts and copies": ("to", "_to_copy", "copy_", "clone", "contiguous"),
    "batch indexing and shuffle": ("index", "randperm", "split", "gather"),
    "learning-rate schedule": ("lr_scheduler",),
}


def profile_step(data, steps: int = 60, amp: str = "auto") -> None:
    """Where one training step's time goes (self CPU time, and CUDA time on a GPU), grouped."""
    from torch.profiler import ProfilerActivity, profile

    train, valid = data
    n = steps * BATCH_SIZE
    trainer, facts = project_trainer(n, 2, amp=amp)
    small = (train[0][:n], train[1][:n])
    trainer.train(small, (valid[0][:BATCH_SIZE], valid[1][:BATCH_SIZE]), 1, BATCH_SIZE)  # warm-up epoch
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if DEVICE.type == "cuda" else [])
    with profile(activities=activities) as prof:
        trainer.train(small, (valid[0][:BATCH_SIZE], valid[1][:BATCH_SIZE]), 2, BATCH_SIZE)
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0 or getattr(e, "self_device_time_total", 0)]
    totals: dict[str, float] = {}
    device_time = DEVICE.type == "cuda"
    for e in events:
        t = getattr(e, "self_device_time_total", 0) if device_time else e.self_cpu_time_total
        name = e.key.lower().removeprefix("aten::")
        group = next((g for g, keys in PROFILE_GROUPS.items() if any(k in name for k in keys)), "other")
        totals[group] = totals.get(group, 0.0) + t
    whole = sum(totals.values()) or 1.0
    kind = "device (CUDA kernel)" if device_time else "self CPU"
    print(f"\nProfile of {steps} training steps, {facts.precision}, {kind} time per step:")
    print("| part of the step | ms per step | share |\n| --- | --- | --- |")
    for group, t in sorted(totals.items(), key=lambda kv: -kv[1]):
        print(f"| {group} | {t / 1e3 / steps:.3f} | {t / whole:.0%} |")
    print(prof.key_averages().table(sort_by="self_device_time_total" if device_time else "self_cpu_time_total",
                                    row_limit=12))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3, help="epochs per variant per round, the first is warm-up")
    parser.add_argument("--repeats", type=int, default=1, help="rounds of all variants")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS),
                        help="default: all but the compiled-without-CUDA-graphs one, and without the bf16 ones on "
                             "a CPU that has no bf16 kernels (they would run for many minutes)")
    parser.add_argument("--data_dir", default="data")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--full_runs", action="store_true", help="also time whole 20-epoch train.py runs")
    parser.add_argument("--profile", action="store_true", help="also profile the project's training step")
    parser.add_argument("--model", choices=list(MODELS), default="mlp", help="the model every variant trains")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="data resident there")
    parser.add_argument("--threads", type=int, help="CPU threads (default: torch's choice)")
    args = parser.parse_args()
    global MODEL, DEVICE
    MODEL, DEVICE = args.model, torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if not args.variants:
        no_bf16 = DEVICE.type == "cpu" and not cpu_has_bf16_kernels()
        args.variants = [v for v in DEFAULT_VARIANTS if not (no_bf16 and ("amp on" in v or "bf16" in v))]
    if "bare" not in args.variants:
        args.variants.insert(0, "bare")

    torch.manual_seed(0)
    x, y = load_mnist(data_dir=args.data_dir, flatten=False)
    x = x.unsqueeze(1)  # (N, 1, 28, 28): every model reads images in their natural shape
    split = torch.randperm(len(x)).split([48000, 12000])
    data = ((x[split[0]].to(DEVICE), y[split[0]].to(DEVICE)), (x[split[1]].to(DEVICE), y[split[1]].to(DEVICE)))
    peak = {dtype: matmul_gflops(dtype) for dtype in ("float32", "bfloat16")}
    ceiling = {dtype: ceiling_samples_per_s(getattr(torch, dtype)) for dtype in peak} if MODEL == "mlp" else {}
    where = torch.cuda.get_device_name(DEVICE) if DEVICE.type == "cuda" else f"{torch.get_num_threads()} CPU threads"
    print(f"torch {torch.__version__}, {where}, model {MODEL}; 2048x2048 matmul peak: "
          f"{peak['float32']:,.0f} GFLOP/s float32, {peak['bfloat16']:,.0f} bfloat16", flush=True)
    for dtype, samples in ceiling.items():
        print(f"ceiling (the step's matrix products alone, batch {BATCH_SIZE}), {dtype}: {samples:,.0f} samples/s",
              flush=True)

    epoch_s, valid_s, ratios = measure(args, data, split)
    rows = []
    for name in epoch_s:
        seconds = statistics.median(epoch_s[name])
        samples = 48000 / seconds
        rows.append({
            "variant": name,
            "precision": PRECISIONS.get(project_key(name), "-") if name.startswith("project") else "-",
            "epoch_s": seconds,
            "valid_s": statistics.median(valid_s[name]),
            "samples_per_s": samples,
            "ratio_to_bare": statistics.median(ratios[name]),
            "of_fp32_ceiling": samples / ceiling["float32"] if ceiling else None,
            "of_bf16_ceiling": samples / ceiling["bfloat16"] if ceiling else None,
        })
    print_table(rows)
    full = full_runs(args.data_dir) if args.full_runs else []
    if full:
        print("\n| 20-epoch train.py run | wall time | test accuracy |\n| --- | --- | --- |")
        for r in full:
            print(f"| {r['run']} | {r['wall_s']:.1f} s | {r['test_accuracy']:.2f}% |")
    if args.json:
        Path(args.json).write_text(json.dumps({"matmul_gflops": peak, "ceiling_samples_per_s": ceiling,
                                               "epochs": args.epochs, "repeats": args.repeats, "device": where,
                                               "rows": rows, "full_runs": full}, indent=2))
    if args.profile:
        profile_step(data)


def project_key(name: str) -> tuple[bool, str]:
    amp = name.split("--amp ")[1] if "--amp " in name else "auto"
    return ("--compile" in name, amp)


def measure(args, data, split) -> tuple[dict, dict, dict]:
    """Every variant, ``args.repeats`` rounds in rotating order; a variant that fails is reported and
    left out, so one broken comparison does not lose the others."""
    epoch_s, valid_s, ratios = {}, {}, {}
    for round_ in range(args.repeats):
        order = args.variants[round_ % len(args.variants):] + args.variants[: round_ % len(args.variants)]
        measured = {}
        for name in order:
            try:
                times = VARIANTS[name](data, args.epochs, data_dir=args.data_dir, split=split)
            except Exception as e:  # noqa: BLE001 -- a benchmark reports and goes on
                print(f"round {round_ + 1}: {name} failed: {type(e).__name__}: {str(e).splitlines()[0][:300]}",
                      flush=True)
                continue
            steady = times[1:] or times
            measured[name] = statistics.median(t for t, _ in steady)
            epoch_s.setdefault(name, []).append(measured[name])
            valid_s.setdefault(name, []).append(statistics.median(v for _, v in steady))
            print(f"round {round_ + 1}: {name:<26} {measured[name]:.3f} s/epoch (first epoch {times[0][0]:.1f} s)",
                  flush=True)
        for name in measured:
            ratios.setdefault(name, []).append(measured["bare"] / measured[name])
    return epoch_s, valid_s, ratios


def print_table(rows: list[dict]) -> None:
    print("\n| variant | precision | s/epoch | of which validation | train samples/s | x bare "
          "| of fp32 ceiling | of bf16 ceiling |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        fractions = ["-" if r[k] is None else f"{r[k]:.0%}" for k in ("of_fp32_ceiling", "of_bf16_ceiling")]
        print(f"| {r['variant']} | {r['precision']} | {r['epoch_s']:.3f} | {r['valid_s']:.3f} "
              f"| {r['samples_per_s']:,.0f} | {r['ratio_to_bare']:.2f} | {' | '.join(fractions)} |")


if __name__ == "__main__":
    main()
