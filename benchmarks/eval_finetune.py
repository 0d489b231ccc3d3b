"""Starting from what exists: fine-tuning against training from nothing, rare classes, and speed.

    python benchmarks/eval_finetune.py --work /tmp/finetune --folders /tmp/folders   # everything
    python benchmarks/eval_finetune.py --work /tmp/finetune --folders /tmp/folders --only digits

Parts (each run a fresh ``train.py`` process, timed from start to exit, one at a time):

- ``small``: colour folders of 250 pictures per class. With no internet, the "pretrained" weights
  are a ``resnet18`` this project trains first on the colour Fashion-MNIST folder of
  ``eval_folders.py``: on five of its classes, for a small folder of the five others ("other
  classes"); and on its whole training split, for a small folder of 250 test pictures per class,
  tested on the other 750 ("same classes"). The fine-tuned ``resnet18`` (``--init_from``,
  ``--freeze``) is compared with the ``cnn`` trained from nothing, at its defaults and for as long as
  the fine-tuning took, and with ``resnet18`` from nothing.
- ``digits``: an MNIST ``cnn`` fine-tuned on 10% of scikit-learn's digits (8x8, scaled up to 20x20
  and centred in 28x28 as MNIST's are), against the same ``cnn`` trained on that 10% alone.
- ``imbalance``: the Fashion-MNIST PNG folder with three classes cut to 5% of their pictures; the
  default loss, ``--class_weight balanced`` and ``--sampler balanced`` with the MLP and the CNN at
  their defaults, judged on the balanced test split.
- ``tta``: ``mnist-evaluate`` with and without ``--tta`` on the models the parts above trained.
- ``speed``: ``resnet18`` at 64x64 on random pictures, images per second of our ``Trainer`` against the
  plain loop of torchvision's tutorials (same model, AdamW, float32), side by side in one process.
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
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from eval_folders import make_fashion_folder, print_table, train  # noqa: E402

PYTHON = sys.executable
SEEN = ("T-shirt-top", "Trouser", "Pullover", "Dress", "Coat")  # the pretraining classes
UNSEEN = ("Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")  # the small folder's
CUT = ("Pullover", "Coat", "Shirt")  # the imbalance part's rare classes: the three most confused
COLUMNS = ("part", "run", "seed", "epochs", "seconds", "accuracy", "balanced_accuracy", "macro_f1", "images_per_s",
           "vs_plain")


def linked_folder(out: Path, source: Path, classes, per_class: dict[str, int | None] | None = None) -> Path:
    """``out/{train,test}/CLASS`` of hard links to ``source``'s files: every test picture, and the first
    ``per_class[CLASS]`` training pictures (all where None)."""
    if (out / "done").exists():
        return out
    shutil.rmtree(out, ignore_errors=True)
    for split in ("train", "test"):
        for name in classes:
            files = sorted((source / split / name).iterdir())
            keep = (per_class or {}).get(name) if split == "train" else None
            (out / split / name).mkdir(parents=True)
            for file in files[:keep]:
                os.link(file, out / split / name / file.name)
    (out / "done").write_text("")
    return out


def new_pictures_folder(out: Path, source: Path, per_class: int) -> Path:
    """``out/train`` the first ``per_class`` pictures of each class of ``source/test``, ``out/test`` the
    rest: pictures a model trained on ``source/train`` never saw (hard links)."""
    if (out / "done").exists():
        return out
    shutil.rmtree(out, ignore_errors=True)
    for folder in sorted((source / "test").iterdir()):
        files = sorted(folder.iterdir())
        for split, chosen in (("train", files[:per_class]), ("test", files[per_class:])):
            (out / split / folder.name).mkdir(parents=True)
            for file in chosen:
                os.link(file, out / split / folder.name / file.name)
    (out / "done").write_text("")
    return out


def evaluate(model_fn: Path, out_dir: Path, flags: tuple | list = ()) -> dict:
    result = subprocess.run([PYTHON, "-m", "mnist_classifier.cli.evaluate", "--model_fn", str(model_fn), "--out_dir",
                             str(out_dir), "--json", "--worst", "0", *flags], capture_output=True, text=True,
                            check=True, cwd=ROOT)
    metrics = json.loads(result.stdout)
    return {"accuracy": 100 * metrics["accuracy"], "balanced_accuracy": 100 * metrics["balanced_accuracy"],
            "macro_f1": metrics["macro_f1"]}


def run(work: Path, name: str, flags: list[str], seed: int = 0) -> dict:
    log = work / f"{name}-seed{seed}.log"
    result = train([*flags, "--seed", str(seed)], log)
    return {"run": name, "seed": seed, "seconds": result["seconds"], "accuracy": result["accuracy"]}


def epoch_seconds(log: Path) -> float:
    """The mean seconds of a run's epochs, from its printed epoch lines."""
    times = [float(t) for t in re.findall(r"\(([\d.]+)s\)\n", log.read_text())]
    return sum(times) / len(times)


def part_small(work: Path, folders: Path, pretrain_epochs: int, finetune_epochs: int) -> list[dict]:
    """Two small sets: five classes the base model never saw, and new pictures of the ten it knows."""
    colour = make_fashion_folder(folders / "fashion-colour", colour=True)
    sets = {"other classes": (linked_folder(work / "pretrain-5", colour, SEEN),
                              linked_folder(work / "small-250", colour, UNSEEN, dict.fromkeys(UNSEEN, 250))),
            "same classes": (colour, new_pictures_folder(work / "small-new-250", colour, 250))}
    rows = []
    for variant, (pretrain, small) in sets.items():
        tag = variant.replace(" ", "-")
        base = work / f"pretrained-resnet18-{tag}.pth"
        if not base.exists():
            result = train(["--dataset", f"folder:{pretrain}", "--data_dir", str(work / "data"), "--model", "resnet18",
                            "--n_epochs", str(pretrain_epochs), "--lr", "2e-3", "--lr_schedule", "onecycle"],
                           base.with_suffix(".log"))
            rows.append({"part": f"small, {variant}", "run": "pretraining resnet18", "seed": 0,
                         "epochs": pretrain_epochs, "seconds": result["seconds"], "accuracy": result["accuracy"]})
        rows += small_runs(work, small, base, tag, finetune_epochs, f"small, {variant}")
    return rows


def small_runs(work: Path, small: Path, base: Path, tag: str, finetune_epochs: int, part: str) -> list[dict]:
    """On ``small``: the CNN from nothing (its defaults, and for as long as the fine-tuning took), resnet18
    from ``base`` and from nothing."""
    on_small = ["--dataset", f"folder:{small}", "--data_dir", str(work / "data"), "--batch_size", "64"]
    cnn = run(work, f"{tag}-cnn-default", [*on_small, "--model", "cnn"])
    resnet = ["--model", "resnet18", "--n_epochs", str(finetune_epochs), "--lr", "2e-3", "--lr_schedule", "onecycle"]
    tuned = run(work, f"{tag}-resnet18-init_from", [*on_small, *resnet, "--init_from", str(base), "--freeze"])
    scratch = run(work, f"{tag}-resnet18-scratch", [*on_small, *resnet])
    # The CNN again, for as long as the fine-tuning took: its epochs from its own epoch time.
    per_epoch = epoch_seconds(work / f"{tag}-cnn-default-seed0.log")
    epochs = max(12, round((tuned["seconds"] - (cnn["seconds"] - 12 * per_epoch)) / per_epoch))
    equal = run(work, f"{tag}-cnn-equal-time", [*on_small, "--model", "cnn", "--n_epochs", str(epochs)])
    return [{"part": part, **row, "epochs": n}
            for row, n in ((cnn, 12), (tuned, finetune_epochs), (scratch, finetune_epochs), (equal, epochs))]


def write_digits_folder(out: Path, share: float = 0.1, seed: int = 0) -> Path:
    """scikit-learn's digits as MNIST-like 28x28 PNGs: ``share`` of them (stratified) in train/, the rest in test/."""
    if (out / "done").exists():
        return out
    from PIL import Image
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    rows = np.arange(len(digits.target))
    train_rows, _ = train_test_split(rows, train_size=share, stratify=digits.target, random_state=seed)
    chosen = set(train_rows.tolist())
    shutil.rmtree(out, ignore_errors=True)
    for i, (image, label) in enumerate(zip(digits.images, digits.target, strict=True)):
        folder = out / ("train" if i in chosen else "test") / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        digit = Image.fromarray((image * 255 / 16).astype(np.uint8)).resize((20, 20), Image.Resampling.BILINEAR)
        canvas = Image.new("L", (28, 28))
        canvas.paste(digit, (4, 4))  # MNIST centres each digit's 20x20 box in 28x28
        canvas.save(folder / f"{i:04d}.png")
    (out / "done").write_text("")
    return out


def part_digits(work: Path, seeds: list[int]) -> list[dict]:
    mnist = work / "mnist-cnn.pth"
    rows = []
    if not mnist.exists():
        result = train(["--dataset", "mnist", "--model", "cnn", "--data_dir", str(ROOT / "data")],
                       mnist.with_suffix(".log"))
        rows.append({"part": "digits", "run": "MNIST cnn (defaults)", "seed": 0, "seconds": result["seconds"],
                     "accuracy": result["accuracy"]})
    folder = write_digits_folder(work / "digits-10pct")
    flags = ["--dataset", f"folder:{folder}", "--data_dir", str(work / "data"), "--model", "cnn", "--batch_size", "32"]
    for seed in seeds:
        rows.append({"part": "digits", **run(work, "digits-cnn-scratch", flags, seed)})
        rows.append({"part": "digits", **run(work, "digits-cnn-init_from", [*flags, "--init_from", str(mnist)], seed)})
    return rows


def part_imbalance(work: Path, folders: Path, seeds: list[int], models: list[str]) -> list[dict]:
    from mnist_classifier.data.datasets import FASHION_CLASSES

    png = make_fashion_folder(folders / "fashion-png")
    names = [name.replace("/", "-") for name in FASHION_CLASSES]
    cut = linked_folder(work / "fashion-imbalanced", png, names, dict.fromkeys(CUT, 300))  # 5% of 6,000
    rows = []
    for model in models:
        flags = ["--dataset", f"folder:{cut}", "--data_dir", str(work / "data"), "--model", model]
        for seed in seeds:
            for name, extra in (("default loss", []), ("--class_weight balanced", ["--class_weight", "balanced"]),
                                ("--sampler balanced", ["--sampler", "balanced"])):
                stem = f"imbalance-{model}-" + name.replace(" ", "_").strip("-")
                row = run(work, stem, [*flags, *extra], seed)
                metrics = evaluate(work / f"{stem}-seed{seed}.pth", work / "evaluation")
                rows.append({"part": "imbalance", **row, **metrics, "run": f"{model}, {name}"})
    return rows


def part_tta(work: Path) -> list[dict]:
    """Test-time augmentation on the models the other parts trained (all with the CNN's 2-pixel shifts)."""
    rows = []
    for name in ("mnist-cnn", "other-classes-cnn-default-seed0", "same-classes-cnn-default-seed0",
                 "digits-cnn-init_from-seed0", "imbalance-cnn-class_weight_balanced-seed0"):
        model_fn = work / f"{name}.pth"
        if not model_fn.exists():
            continue
        for tta in (False, True):
            started = time.perf_counter()
            result = evaluate(model_fn, work / "evaluation", ["--tta"] if tta else [])
            rows.append({"part": "tta", "run": f"{name}{' --tta' if tta else ''}",
                         "seconds": time.perf_counter() - started, **result})
    return rows


def part_speed(n_images: int, batch: int) -> list[dict]:
    """In one process, alternately: our Trainer (float32, and --amp auto) and the plain loop."""
    script = ROOT / "benchmarks" / "eval_finetune.py"
    result = subprocess.run([PYTHON, str(script), "--speed_child", str(n_images), str(batch)], capture_output=True,
                            text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def speed_child(n_images: int, batch: int) -> None:
    import torch
    import torchvision

    from mnist_classifier.training.build import build_trainer
    from mnist_classifier.training.config import RunFacts, TrainConfig

    torch.manual_seed(0)
    x = torch.randint(0, 256, (n_images, 3, 64, 64), dtype=torch.uint8)
    y = torch.randint(0, 10, (n_images,))
    valid = (x[:batch], y[:batch])

    def ours(amp: str) -> tuple[float, str]:
        config = TrainConfig(model_fn="m.pth", model="resnet18", amp=amp, batch_size=batch, n_epochs=2,
                             lr_schedule="constant", verbose=0)
        facts = RunFacts()  # the precision build_trainer chooses
        trainer = build_trainer(config.validate(), (3, 64, 64), 10, n_images, torch.device("cpu"), facts=facts)
        trainer.train((x, y), valid, n_epochs=2, batch_size=batch)
        last = trainer.history[-1]  # the first epoch warms up
        return n_images / (last["seconds"] - last["valid_seconds"]), facts.precision

    def plain() -> float:
        model = torchvision.models.resnet18(num_classes=10)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        loss_fn = torch.nn.CrossEntropyLoss()
        images = x.float() / 255
        seconds = 0.0
        for _ in range(2):
            started = time.perf_counter()
            model.train()
            for rows in torch.randperm(n_images).split(batch):
                optimizer.zero_grad()
                loss_fn(model(images[rows]), y[rows]).backward()
                optimizer.step()
            seconds = time.perf_counter() - started
        return n_images / seconds

    rows = []
    for repeat in range(2):
        fp32, _ = ours("off")
        auto, precision = ours("auto")
        loop = plain()
        rows += [{"part": "speed", "run": "our Trainer, --amp off", "seed": repeat, "images_per_s": fp32,
                  "vs_plain": fp32 / loop},
                 {"part": "speed", "run": f"our Trainer, --amp auto ({precision})", "seed": repeat,
                  "images_per_s": auto, "vs_plain": auto / loop},
                 {"part": "speed", "run": "plain loop (fp32)", "seed": repeat, "images_per_s": loop, "vs_plain": 1.0}]
    print(json.dumps(rows))


def main() -> None:
    if sys.argv[1:2] == ["--speed_child"]:
        speed_child(int(sys.argv[2]), int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True, help="where folders, models and logs are written")
    parser.add_argument("--folders", type=Path, required=True, help="eval_folders.py's --work (its Fashion folders; "
                        "written there when missing)")
    every = ["speed", "digits", "imbalance", "small", "tta"]
    parser.add_argument("--only", nargs="+", default=every, choices=every)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--pretrain_epochs", type=int, default=3)
    parser.add_argument("--finetune_epochs", type=int, default=8)
    parser.add_argument("--imbalance_models", nargs="+", default=["mlp", "cnn"])
    parser.add_argument("--speed_images", type=int, default=1024)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    parts = {"small": lambda: part_small(args.work, args.folders, args.pretrain_epochs, args.finetune_epochs),
             "digits": lambda: part_digits(args.work, args.seeds),
             "imbalance": lambda: part_imbalance(args.work, args.folders, args.seeds, args.imbalance_models),
             "speed": lambda: part_speed(args.speed_images, 64), "tta": lambda: part_tta(args.work)}
    rows = []
    for name in args.only:
        rows += parts[name]()
        (args.work / "results.json").write_text(json.dumps(rows, indent=1))
        print_table(rows, COLUMNS)
        print(flush=True)


if __name__ == "__main__":
    main()
