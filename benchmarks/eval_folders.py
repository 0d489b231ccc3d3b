"""Folders of pictures against the built-in set and against the loop people write for them.

    python benchmarks/eval_folders.py --work /tmp/folders               # everything (about 40 min on 2 cores)
    python benchmarks/eval_folders.py --work /tmp/folders --only speed  # one part: speed, seeds, decode, colour,
                                                        # defaults, scale, large (the 4 GB cache; needs root)
    python benchmarks/eval_folders.py --work demo --only folders     # only write the folders

Fashion-MNIST is written out as 70,000 PNG files (``train/`` and ``test/``, a folder per class), and
as a colour variant: each picture tinted, laid on a random coloured background, a fifth of them at
other sizes (20-56 px, not square). Every training run is a fresh process (``train.py``), timed
from start to exit, one at a time. The "tutorial loop" is what torchvision's tutorials teach:
``ImageFolder`` with ``transforms``, a ``DataLoader`` with ``num_workers=2``, the same model, the
same optimizer and epochs, in float32.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from mnist_classifier.data.datasets import FASHION_CLASSES  # noqa: E402
from mnist_classifier.kinds import load_dataset  # noqa: E402

PYTHON = sys.executable


# ---- the folders -----------------------------------------------------------------------------------

def _write_part(task: tuple) -> None:
    folder, names, start, images, labels, colour, seed = task
    from PIL import Image

    rng = np.random.default_rng(seed)
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        picture = Image.fromarray(image, mode="L")
        if colour:
            picture = _colour_variant(picture, rng)
        picture.save(folder / names[label] / f"{start + i:05d}.png", compress_level=1)


def _colour_variant(picture, rng):
    """Tinted clothes on a random coloured background; a fifth at another size, not square."""
    from PIL import Image

    gray = np.asarray(picture, dtype=np.float32)[..., None] / 255.0
    tint = rng.uniform(0.4, 1.0, 3)
    background = rng.uniform(0, 0.6, 3)
    rgb = gray * tint + (1 - gray) * background
    image = Image.fromarray((rgb * 255).astype(np.uint8), mode="RGB")
    if rng.random() < 0.2:
        image = image.resize(tuple(int(v) for v in rng.integers(20, 57, 2)), Image.Resampling.BILINEAR)
    return image


def make_fashion_folder(out: Path, colour: bool = False) -> Path:
    """Fashion-MNIST as PNG files under ``out`` (train/ and test/), unless already there."""
    if (out / "done").exists():
        return out
    shutil.rmtree(out, ignore_errors=True)
    dataset = load_dataset("fashion-mnist")
    names = [name.replace("/", "-") for name in FASHION_CLASSES]
    tasks = []
    for split, (x, y) in (("train", dataset.train), ("test", dataset.test)):
        for name in names:
            (out / split / name).mkdir(parents=True, exist_ok=True)
        pixels = (x[:, 0].numpy() * 255).round().astype(np.uint8)
        labels = y.numpy()
        for start in range(0, len(labels), 5000):
            tasks.append((out / split, names, start, pixels[start:start + 5000], labels[start:start + 5000], colour,
                          start + len(tasks)))
    with ProcessPoolExecutor(os.cpu_count()) as pool:
        list(pool.map(_write_part, tasks))
    (out / "done").write_text("")
    return out


# ---- timed runs ------------------------------------------------------------------------------------

def train(flags: list[str], log: Path) -> dict:
    """One training run in a fresh process: wall seconds, test accuracy and peak memory (ru_maxrss)."""
    command = [PYTHON, str(ROOT / "train.py"), "--model_fn", str(log.with_suffix(".pth")), "--verbose", "1",
               "--seed", "0", *flags]
    return timed(command, log)


def timed(command: list[str], log: Path) -> dict:
    started = time.perf_counter()
    wrapped = [PYTHON, "-c", "import resource, subprocess, sys; code = subprocess.call(sys.argv[1:]); "
               "print('peak_kib', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
               "sys.exit(code)", *command]
    result = subprocess.run(wrapped, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    log.write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr[-2000:]}")
    accuracy = re.search(r"Test accuracy: ([\d.]+)%", result.stdout)
    peak = re.search(r"peak_kib (\d+)", result.stderr)
    return {"seconds": seconds, "accuracy": float(accuracy.group(1)) if accuracy else None,
            "peak_mib": int(peak.group(1)) / 1024 if peak else None}


def tutorial(root: str, model: str, epochs: int, gray: bool, out: str) -> None:
    """The loop of torchvision's tutorials, with our model family: run in its own process."""
    import torch
    from torchvision import datasets, transforms

    from mnist_classifier.kinds import KINDS
    from mnist_classifier.training.build import build_model
    from mnist_classifier.training.config import MODEL_DEFAULTS, TRAIN_OPTIONS, TrainConfig, defaults_for

    torch.manual_seed(0)
    steps = [transforms.Grayscale(1)] if gray else [transforms.Resize(28), transforms.CenterCrop(28)]
    transform = transforms.Compose([*steps, transforms.ToTensor()])
    train_set = datasets.ImageFolder(f"{root}/train", transform=transform)
    test_set = datasets.ImageFolder(f"{root}/test", transform=transform)
    n_train = int(0.8 * len(train_set))  # the same share trains as in our runs; the rest is unused
    train_part, _ = torch.utils.data.random_split(train_set, [n_train, len(train_set) - n_train])
    loader = torch.utils.data.DataLoader(train_part, batch_size=256, shuffle=True, num_workers=2)
    # The model a folder run builds: the family's options as folder:PATH sets them (the CNN's global pool).
    options = {k: v for k, v in defaults_for(model, KINDS["photo"]).items() if k not in TRAIN_OPTIONS}
    config = TrainConfig(model_fn="x", model=model, model_options=options)
    config = config.validate()
    shape = (1 if gray else 3, 28, 28)
    net = build_model(config, shape, 10, "classification", torch.device("cpu"))
    lr = MODEL_DEFAULTS.get(model, {}).get("lr", 1e-3)
    optimizer = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=0.0)
    loss_fn = torch.nn.NLLLoss()
    for _ in range(epochs):
        net.train()
        for x, y in loader:
            optimizer.zero_grad()
            loss_fn(net(x), y).backward()
            optimizer.step()
    net.eval()
    correct = total = 0
    with torch.inference_mode():
        for x, y in torch.utils.data.DataLoader(test_set, batch_size=1024, num_workers=2):
            correct += (net(x).argmax(-1) == y).sum().item()
            total += len(y)
    print(f"Test accuracy: {100 * correct / total:.2f}% ({total} images)")


def tutorial_run(root: Path, model: str, epochs: int, gray: bool, log: Path) -> dict:
    code = (f"import sys; sys.path.insert(0, {str(ROOT)!r}); sys.path.insert(0, {str(ROOT / 'benchmarks')!r}); "
            f"import eval_folders; eval_folders.tutorial({str(root)!r}, {model!r}, {epochs}, {gray}, '')")
    return timed([PYTHON, "-c", code], log)


# ---- the parts -------------------------------------------------------------------------------------

def clear_cache(data_dir: Path) -> None:
    shutil.rmtree(data_dir / "folder-cache", ignore_errors=True)


def part_speed(work: Path, epochs: int, cnn_epochs: int, models: list[str]) -> list[dict]:
    """Default flags (the MLP) and the CNN: built-in set, folder cold, folder warm, tutorial loop."""
    folder = make_fashion_folder(work / "fashion-png")
    data = work / "data"
    rows = []
    for model, n in [(m, n) for m, n in (("mlp", epochs), ("cnn", cnn_epochs)) if m in models]:
        flags = ["--n_epochs", str(n)] + (["--model", "cnn"] if model == "cnn" else [])
        builtin = train(["--dataset", "fashion-mnist", *flags], work / f"builtin-{model}.log")
        clear_cache(data)
        cold = train(["--dataset", f"folder:{folder}", "--data_dir", str(data), *flags], work / f"cold-{model}.log")
        warm = train(["--dataset", f"folder:{folder}", "--data_dir", str(data), *flags], work / f"warm-{model}.log")
        loop = tutorial_run(folder, model, n, True, work / f"tutorial-{model}.log")
        for name, result in (("--dataset fashion-mnist", builtin), ("folder, cold cache", cold),
                             ("folder, warm cache", warm), ("ImageFolder + DataLoader loop", loop)):
            rows.append({"part": "speed", "model": model, "epochs": n, "run": name, **result,
                         "vs_builtin": result["seconds"] / builtin["seconds"]})
    return rows


def part_seeds(work: Path, seeds: list[int]) -> list[dict]:
    """Default flags, built-in set against the folder (warm cache), over several seeds: how far apart
    the two are beyond seed-to-seed noise."""
    folder = make_fashion_folder(work / "fashion-png")
    rows = []
    for seed in seeds:
        for name, flags in (("--dataset fashion-mnist", ["--dataset", "fashion-mnist"]),
                            ("folder", ["--dataset", f"folder:{folder}", "--data_dir", str(work / "data")])):
            result = train([*flags, "--seed", str(seed)], work / f"seed{seed}-{name[-6:].strip('-')}.log")
            rows.append({"part": "seeds", "model": "mlp", "run": f"{name}, seed {seed}", **result})
    for name in ("--dataset fashion-mnist", "folder"):
        accuracies = [r["accuracy"] for r in rows if r["run"].startswith(name + ",")]
        rows.append({"part": "seeds", "model": "mlp", "run": f"{name}, mean of {len(seeds)}",
                     "accuracy": sum(accuracies) / len(accuracies)})
    return rows


def part_defaults(work: Path, colour: bool) -> list[dict]:
    """The CNN's folder default, chosen on validation loss: a global average pool, or the flattened map."""
    folder = make_fashion_folder(work / ("fashion-colour" if colour else "fashion-png"), colour=colour)
    rows = []
    for name, flags in (("global pool (folder default)", []), ("flattened map", ["--no-global_pool"])):
        log = work / f"defaults-{'colour' if colour else 'png'}-{name.split()[0]}.log"
        result = train(["--dataset", f"folder:{folder}", "--data_dir", str(work / "data"), "--model", "cnn", *flags],
                       log)
        best = min(float(v) for v in re.findall(r"valid_loss=([\d.e+-]+)", log.read_text()))
        rows.append({"part": "defaults", "model": "cnn", "run": f"{'colour' if colour else 'png'}: {name}",
                     **result, "valid_loss": best})
    return rows


def part_colour(work: Path, cnn_epochs: int) -> list[dict]:
    """The colour variant: default flags, then the CNN with each resize policy, against the loop."""
    folder = make_fashion_folder(work / "fashion-colour", colour=True)
    data, rows = work / "data", []
    for name, flags in (("default flags (mlp)", []),
                        ("cnn, crop", ["--model", "cnn", "--n_epochs", str(cnn_epochs)]),
                        ("cnn, pad", ["--model", "cnn", "--n_epochs", str(cnn_epochs), "--resize", "pad"])):
        result = train(["--dataset", f"folder:{folder}", "--data_dir", str(data), *flags],
                       work / f"colour-{name.replace(' ', '_').replace(',', '')}.log")
        rows.append({"part": "colour", "run": name, **result})
    loop = tutorial_run(folder, "cnn", cnn_epochs, False, work / "colour-tutorial.log")
    rows.append({"part": "colour", "run": "cnn, ImageFolder + DataLoader loop", **loop})
    return rows


def part_decode(work: Path) -> list[dict]:
    """Our decoding against Pillow's, on the same 70,000 files: Pillow in one process (open, decode,
    as an array), our decoding stage in a process per core (each file's header and pixels, written to
    the cache), and a whole cold load (listing, decoding, writing, loading)."""
    folder = make_fashion_folder(work / "fashion-png")
    files = sorted(str(p) for p in folder.rglob("*.png"))
    listing = work / "decode-files.json"
    listing.write_text(json.dumps(files))
    load_files = f"import json; files = json.load(open({str(listing)!r}))"
    pillow = (f"import sys, time, numpy as np; from PIL import Image; {load_files}; t = time.perf_counter()\n"
              "for path in files:\n    with Image.open(path) as image: np.asarray(image.convert('L'))\n"
              "print('seconds', time.perf_counter() - t)")
    stage = (f"import sys, time; from pathlib import Path; sys.path.insert(0, {str(ROOT)!r}); "
             "from mnist_classifier.data import image_cache; "
             f"{load_files}; root = Path({str(folder)!r}); names = [str(Path(p).relative_to(root)) for p in files]; "
             f"cache = Path({str(work / 'decode-stage')!r}); cache.mkdir(exist_ok=True); t = time.perf_counter(); "
             "image_cache.decode_new(root, names, (1, 28, 28), 'crop', cache); "
             "print('seconds', time.perf_counter() - t)")
    whole = (f"import sys, time; sys.path.insert(0, {str(ROOT)!r}); from mnist_classifier.data.datasets import "
             f"load_dataset; t = time.perf_counter(); load_dataset('folder:{folder}', {str(work / 'data')!r}); "
             "print('seconds', time.perf_counter() - t)")

    def rate(code: str) -> float:
        out = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, check=True).stdout
        return len(files) / float(out.split()[-1])

    single = rate(pillow)
    ours = rate(stage)
    clear_cache(work / "data")
    cold = rate(whole)
    single = (single + rate(pillow)) / 2  # before and after ours: the machine drifts
    cores = os.cpu_count()
    return [{"part": "decode", "run": "Pillow, one process (open, decode, array)", "images_per_s": single},
            {"part": "decode", "run": f"our decoding stage, {cores} processes", "images_per_s": ours,
             "vs_ideal": ours / (single * cores)},
            {"part": "decode", "run": "our whole cold load (list, decode, write, load)", "images_per_s": cold,
             "vs_ideal": cold / (single * cores)}]


def _write_synthetic(task: tuple) -> None:
    folder, start, count, side, seed = task
    from PIL import Image

    rng = np.random.default_rng(seed)
    for i in range(start, start + count):
        label = i % 2
        pixels = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
        pixels[..., label] //= 4  # class 0 has little red, class 1 little green
        Image.fromarray(pixels).save(folder / f"c{label}" / f"{i:07d}.png", compress_level=1)


def synthetic_folder(out: Path, n: int, side: int) -> Path:
    if (out / "done").exists():
        return out
    shutil.rmtree(out, ignore_errors=True)
    for label in (0, 1):
        (out / f"c{label}").mkdir(parents=True)
    chunk = 10000
    tasks = [(out, start, min(chunk, n - start), side, start) for start in range(0, n, chunk)]
    with ProcessPoolExecutor(os.cpu_count()) as pool:
        list(pool.map(_write_synthetic, tasks))
    (out / "done").write_text("")
    return out


def part_scale(work: Path, sizes: list[int]) -> list[dict]:
    """Cold and warm loads of 10k, 100k, 1M generated 8x8 pictures: time and peak memory."""
    rows = []
    for n in sizes:
        folder = synthetic_folder(work / f"synthetic-{n}", n, 8)
        data = work / f"data-scale-{n}"
        code = (f"import sys; sys.path.insert(0, {str(ROOT)!r}); from mnist_classifier.data.datasets import "
                f"load_dataset; d = load_dataset('folder:{folder}', {str(data)!r}); print(d.found)")
        shutil.rmtree(data, ignore_errors=True)
        for state in ("cold", "warm"):
            result = timed([PYTHON, "-c", code], work / f"scale-{n}-{state}.log")
            size = sum(p.stat().st_size for p in data.rglob("*") if p.is_file())
            rows.append({"part": "scale", "run": f"{n:,} pictures, {state} cache", "images": n, **result,
                         "cache_mib": size / 2**20})
    return rows


def part_large(work: Path, limit_gib: float) -> list[dict]:
    """A cache 3x larger than a cgroup's memory limit trains to the end (needs root, cgroup v1 or v2)."""
    n, side = 90000, 128  # 90,000 x 3 x 128 x 128 bytes = 4.1 GiB of cache from 32x32 files
    folder = synthetic_folder(work / "synthetic-large", n, 32)
    data = work / "data-large"
    group = _cgroup(int(limit_gib * 2**30))
    flags = ["--dataset", f"folder:{folder}", "--data_dir", str(data), "--image_size", str(side), "--n_epochs", "1",
             "--hidden_sizes", "32", "--batch_size", "256"]
    command = [PYTHON, "-c", f"import os, sys, subprocess; open({str(group / 'cgroup.procs')!r}, 'w').write(str("
               "os.getpid())); sys.exit(subprocess.call(sys.argv[1:]))", PYTHON, str(ROOT / "train.py"),
               "--model_fn", str(work / "large.pth"), "--seed", "0", *flags]
    result = timed(command, work / "large.log")
    cache = sum(p.stat().st_size for p in data.rglob("*.u8"))
    peak = next(group / name for name in ("memory.peak", "memory.max_usage_in_bytes") if (group / name).exists())
    return [{"part": "large", "run": f"{n:,} pictures at {side}x{side}, cache {cache / 2**30:.2f} GiB, limit "
             f"{limit_gib} GiB", **result, "cache_gib": cache / 2**30,
             "cgroup_peak_mib": int(peak.read_text()) / 2**20}]


def _cgroup(limit: int) -> Path:
    v2 = Path("/sys/fs/cgroup/cgroup.controllers")
    base = Path("/sys/fs/cgroup") if v2.exists() else Path("/sys/fs/cgroup/memory")
    group = base / "eval_folders"
    group.mkdir(exist_ok=True)
    (group / ("memory.max" if v2.exists() else "memory.limit_in_bytes")).write_text(str(limit))
    return group


def make_folders(work: Path) -> list[dict]:
    """Only write the two folders (fashion-png, fashion-colour): the README's walk-through starts here."""
    for name, colour in (("fashion-png", False), ("fashion-colour", True)):
        print(f"{make_fashion_folder(work / name, colour)}: 70,000 PNG files in train/ and test/", flush=True)
    return []


COLUMNS = ("part", "model", "epochs", "run", "seconds", "vs_builtin", "accuracy", "valid_loss", "peak_mib",
           "images_per_s", "vs_ideal", "cache_mib", "cache_gib", "cgroup_peak_mib")


def print_table(rows: list[dict], columns: tuple[str, ...] = COLUMNS) -> None:
    keys = [k for k in columns if any(k in r for r in rows)]
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for row in rows:
        cells = [row.get(k, "") for k in keys]
        print("| " + " | ".join(f"{c:,.2f}" if isinstance(c, float) else str(c) for c in cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True, help="where the folders and caches are written")
    every = ["speed", "seeds", "decode", "colour", "defaults", "scale", "large"]
    parser.add_argument("--only", nargs="+", default=every, choices=[*every, "folders"])
    parser.add_argument("--epochs", type=int, default=20, help="the MLP's epochs (the default flags')")
    parser.add_argument("--cnn_epochs", type=int, default=20)
    parser.add_argument("--speed_models", nargs="+", default=["mlp", "cnn"], choices=["mlp", "cnn"])
    parser.add_argument("--scale", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--limit_gib", type=float, default=1.3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="for the seeds part")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    parts = {"speed": lambda: part_speed(args.work, args.epochs, args.cnn_epochs, args.speed_models),
             "colour": lambda: part_colour(args.work, args.cnn_epochs), "decode": lambda: part_decode(args.work),
             "scale": lambda: part_scale(args.work, args.scale), "large": lambda: part_large(args.work, args.limit_gib),
             "seeds": lambda: part_seeds(args.work, args.seeds),
             "folders": lambda: make_folders(args.work),
             "defaults": lambda: part_defaults(args.work, False) + part_defaults(args.work, True)}
    rows = []
    for name in args.only:
        rows += parts[name]()
        if not rows:
            continue
        (args.work / "results.json").write_text(json.dumps(rows, indent=1))
        print_table(rows)
        print(flush=True)


if __name__ == "__main__":
    main()
