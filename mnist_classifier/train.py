"""``mnist-train``: train the seed's classifier (on MNIST by default), save it, report the test result."""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from .augment import RandomDistortion
from .checkpoint import load_checkpoint, save_checkpoint, stop_on_signals
from .cli import OneLineParser, run_cli
from .config import LR_SCHEDULES, PRESETS, TrainConfig
from .datasets import CLASSIFICATION, REGRESSION, Dataset, load_dataset
from .errors import UserError
from .model import ImageClassifier
from .model_file import save_model_file
from .trainer import Trainer, TrainingDiverged, TrainingInterrupted, TrainingStopped, evaluate
from .utils import default_gpu_id, get_device, get_hidden_sizes, split_data

REGRESSION_LOSSES = {"mse": nn.MSELoss, "l1": nn.L1Loss, "huber": nn.HuberLoss}


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="mnist-train", description=__doc__)
    p.add_argument("--model_fn", help="where to save the trained model file (required, except with --resume)")
    p.add_argument("--gpu_id", type=int, default=default_gpu_id(),
                   help="CUDA device index, -1 for the CPU (default: %(default)s)")
    p.add_argument("--train_ratio", type=float, default=0.8,
                   help="share of the training set used for training; the rest validates (default: %(default)s)")
    p.add_argument("--batch_size", type=int, default=256, help="mini-batch size (default: %(default)s)")
    p.add_argument("--n_epochs", type=int, default=20, help="number of epochs (default: %(default)s)")
    p.add_argument("--n_layers", type=int, default=5,
                   help="number of linear layers; hidden sizes step evenly down (default: %(default)s)")
    p.add_argument("--use_dropout", action="store_true", help="use Dropout instead of BatchNorm1d in each block")
    p.add_argument("--dropout_p", type=float, default=0.3, help="dropout probability (default: %(default)s)")
    p.add_argument("--verbose", type=int, default=1,
                   help="0: only the result; 1: a line per epoch and, on a terminal, a progress bar (default: 1)")
    p.add_argument("--seed", type=int, default=None,
                   help="random seed for a repeatable run (default: a random one, saved in the model file)")
    p.add_argument("--hidden_sizes", type=_int_list, default=None,
                   help="comma-separated hidden sizes, e.g. 1024,512; overrides --n_layers")
    p.add_argument("--lr", type=float, default=1e-3,
                   help="Adam's learning rate; the peak rate with onecycle (default: %(default)s)")
    p.add_argument("--lr_schedule", choices=LR_SCHEDULES, default="cosine",
                   help="cosine: decay the learning rate to 0 over the run; onecycle: warm up, then decay; "
                        "constant: the seed's fixed rate (default: %(default)s)")
    p.add_argument("--weight_decay", type=float, default=0.0,
                   help="decoupled weight decay (AdamW); 0 is plain Adam (default: %(default)s)")
    p.add_argument("--label_smoothing", type=float, default=0.0,
                   help="share of each target spread over all classes (default: %(default)s)")
    p.add_argument("--augment", action="store_true",
                   help="distort training images (random affine and elastic) on every batch")
    p.add_argument("--hflip", action="store_true",
                   help="mirror half the training images left-right (for clothes, not for digits)")
    p.add_argument("--shift_px", type=float, default=0.0,
                   help="shift training images by up to this many pixels (without --augment) (default: 0)")
    p.add_argument("--patience", type=int, default=0,
                   help="stop after this many epochs without a lower validation loss; 0: never (default: 0)")
    p.add_argument("--compile", action="store_true",
                   help="compile the training step with torch.compile (a few percent faster per epoch on a CPU)")
    p.add_argument("--amp", action="store_true",
                   help="bfloat16 mixed precision: about 2x faster on CPUs with AVX512-BF16 and on recent GPUs")
    p.add_argument("--preset", choices=sorted(PRESETS),
                   help="a named set of defaults, e.g. record (see README); flags given too still win")
    p.add_argument("--dataset", default="mnist",
                   help="mnist, fashion-mnist, digits, diabetes or csv:PATH (default: %(default)s)")
    p.add_argument("--task", choices=[CLASSIFICATION, REGRESSION],
                   help="for csv:PATH: what the target is (default: classification; built-in sets know theirs)")
    p.add_argument("--target", help="for csv:PATH: the target column (default: the last one)")
    p.add_argument("--test_csv", help="for csv:PATH: a separate test file (default: 20%% of the file)")
    p.add_argument("--drop_na", action="store_true", help="for csv:PATH: drop rows with empty or NaN cells")
    p.add_argument("--loss", choices=["nll", *REGRESSION_LOSSES],
                   help="nll for classification (the default); mse (default), l1 or huber for regression")
    p.add_argument("--data_dir", default="data", help="where downloaded datasets are kept (default: %(default)s)")
    p.add_argument("--checkpoint_every", type=int, default=0,
                   help="write a resumable checkpoint every N epochs; 0: only when interrupted (default: 0)")
    p.add_argument("--checkpoint_fn", help="where checkpoints go (default: MODEL_FN.ckpt)")
    p.add_argument("--resume", metavar="CHECKPOINT",
                   help="continue the run saved in CHECKPOINT, with its configuration")
    return p


def _int_list(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def parse_config(argv: list[str] | None = None) -> TrainConfig:
    """Flags -> a validated ``TrainConfig``; a ``--preset`` supplies defaults, explicit flags win."""
    pre = OneLineParser(prog="mnist-train", add_help=False)
    pre.add_argument("--preset", choices=sorted(PRESETS))
    preset = pre.parse_known_args(argv)[0].preset
    parser = build_parser()
    if preset:
        parser.set_defaults(**PRESETS[preset])
    config = TrainConfig(**vars(parser.parse_args(argv)))
    config.validate()
    return config


def check_writable(path: str | Path) -> None:
    """Refuse a model path we could not write, before hours of training are spent."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"--model_fn {path} is a folder, not a file")
    folder = path.parent
    if not folder.is_dir():
        raise UserError(f"--model_fn {path}: the folder {folder} does not exist")
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", dir=folder)
    except OSError as e:
        raise UserError(f"--model_fn {path}: cannot write into {folder} ({e.strerror})") from e
    os.close(fd)
    os.unlink(probe)


def make_scheduler(optimizer, config: TrainConfig, n_train: int):
    """The learning-rate schedule, stepped once per batch; None keeps the rate fixed."""
    if config.lr_schedule == "constant":
        return None
    steps = config.n_epochs * math.ceil(n_train / config.batch_size)
    if config.lr_schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=steps)
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)


def build_trainer(config: TrainConfig, input_size: int, output_size: int, n_train: int,
                  device: torch.device, task: str = CLASSIFICATION) -> Trainer:
    """The model, optimizer, loss and schedule that ``config`` asks for, wired into a ``Trainer``."""
    hidden_sizes = config.hidden_sizes or get_hidden_sizes(input_size, output_size, config.n_layers)
    model = ImageClassifier(
        input_size, output_size, hidden_sizes, use_batch_norm=not config.use_dropout, dropout_p=config.dropout_p,
        classify=task == CLASSIFICATION,
    ).to(device)
    # The fused kernel updates all parameters at once; the default per-parameter loop took about a
    # fifth of every CPU training step (torch.profiler). AdamW with weight_decay=0 is Adam.
    fused = device.type in ("cpu", "cuda")
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=fused)
    return Trainer(
        model,
        optimizer,
        make_loss(config, task),
        make_scheduler(optimizer, config, n_train),
        compile=config.compile,
        amp=config.amp,
        augment=make_augment(config, input_size),
        patience=config.patience,
    )


def make_loss(config: TrainConfig, task: str = CLASSIFICATION) -> nn.Module:
    """NLLLoss on the model's log-probabilities, as the seed (label smoothing when asked);
    for regression, ``--loss`` or MSE."""
    if task == REGRESSION:
        if config.loss == "nll":
            raise UserError("--loss nll needs class targets; use mse, l1 or huber for regression")
        return REGRESSION_LOSSES[config.loss or "mse"]()
    if config.loss not in (None, "nll"):
        raise UserError(f"--loss {config.loss} is a regression loss; use it with --task regression")
    if not config.label_smoothing:
        return nn.NLLLoss()
    # log_softmax leaves log-probabilities unchanged, so CrossEntropyLoss on them is NLLLoss
    # with label smoothing, computed by torch itself.
    return nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)


def make_augment(config: TrainConfig, input_size: int) -> RandomDistortion | None:
    if not (config.augment or config.hflip or config.shift_px):
        return None
    side = math.isqrt(input_size)
    if side * side != input_size:
        raise UserError(f"--augment, --hflip and --shift_px need square images, but the inputs have {input_size} "
                        "values")
    flip_p = 0.5 if config.hflip else 0.0
    if not config.augment:
        return RandomDistortion.rigid(side, config.shift_px, flip_p)
    return RandomDistortion(side, flip_p=flip_p)


def run(config: TrainConfig, resume: dict | None = None) -> dict:
    """Train, save and test as ``config`` says; return the test metrics.

    ``resume`` is a trainer snapshot from a checkpoint: training continues after its epoch.
    Ctrl-C or SIGTERM saves the best model and a checkpoint, then raises ``TrainingInterrupted``;
    a NaN loss saves the best model, then raises ``TrainingDiverged``.
    """
    device = get_device(config.gpu_id)
    check_writable(config.model_fn)
    if config.seed is None:
        config.seed = random.SystemRandom().randrange(2**31)  # saved, so any run can be repeated
    torch.manual_seed(config.seed)

    # The test set is loaded up front too: a data problem should show before training, not after.
    dataset = load_configured_dataset(config)
    train_data, valid_data = split_data(*dataset.train, config.train_ratio)
    if len(train_data[0]) < config.batch_size:
        raise UserError(f"{dataset.name}: {len(train_data[0])} training rows after the validation split, fewer "
                        f"than one batch (--batch_size {config.batch_size}); lower --batch_size")
    say = print if config.verbose >= 1 else (lambda *a, **k: None)
    say(f"{dataset.name}: train {tuple(train_data[0].shape)}, valid {tuple(valid_data[0].shape)}, "
        f"test {tuple(dataset.test[0].shape)} on {device}, seed {config.seed}")

    trainer = build_trainer(config, dataset.input_size, dataset.output_size, len(train_data[0]), device, dataset.task)
    if resume is not None:
        trainer.load_state_dict(resume)  # after building: restores the random generators too
        say(f"Resuming after epoch {len(trainer.history)}")
    say(trainer.model)
    started = time.perf_counter()

    def save_best(**extra) -> None:
        trainer.model.load_state_dict(trainer.best_state)
        save_model_file(config.model_fn, trainer.model, trainer.optimizer, config.to_dict(),
                        history=trainer.history, classes=dataset.classes, dataset=dataset.metadata(),
                        best_epoch=trainer.best_epoch, train_seconds=time.perf_counter() - started, **extra)

    try:
        with stop_on_signals(trainer):
            trainer.train(train_data, valid_data, config, on_epoch_end=lambda t: _checkpoint(t, config))
    except TrainingStopped as stop:
        _save_after_stop(stop, trainer, config, save_best)
        raise
    save_best()
    say(f"Saved the best model (epoch {trainer.best_epoch}, valid_loss={trainer.best_valid_loss:.4e})"
        f" to {config.model_fn}; training took {time.perf_counter() - started:.1f}s")
    test = evaluate(trainer.model, trainer.crit, dataset.test, config.batch_size)
    if dataset.task == REGRESSION:
        # Targets were standardised for training; the RMSE is reported in the target's own units.
        test["rmse"] = math.sqrt(test["mse"]) * dataset.y_std
    print(describe_test(test, dataset))
    return test


def checkpoint_path(config: TrainConfig) -> str:
    return config.checkpoint_fn or f"{config.model_fn}.ckpt"


def _checkpoint(trainer: Trainer, config: TrainConfig) -> None:
    if config.checkpoint_every and len(trainer.history) % config.checkpoint_every == 0:
        save_checkpoint(checkpoint_path(config), trainer, config.to_dict())


def _save_after_stop(stop: TrainingStopped, trainer: Trainer, config: TrainConfig, save_best) -> None:
    """Keep what the stopped run achieved: its best model and, when interrupted, a checkpoint."""
    print(f"mnist-train: {stop}", file=sys.stderr)
    if trainer.snapshot is None:
        print("mnist-train: no epoch was completed; nothing was saved", file=sys.stderr)
        return
    save_best(stopped=str(stop))
    where = f"the best model so far (epoch {trainer.best_epoch}) is in {config.model_fn}"
    if isinstance(stop, TrainingInterrupted):
        save_checkpoint(checkpoint_path(config), trainer, config.to_dict())
        where += (f"; continue from epoch {len(trainer.snapshot['history']) + 1} with "
                  f"`mnist-train --resume {checkpoint_path(config)}`")
    print(f"mnist-train: {where}", file=sys.stderr)


def load_configured_dataset(config: TrainConfig) -> Dataset:
    """The dataset ``--dataset`` names, checked against ``--task``."""
    dataset = load_dataset(config.dataset, config.data_dir, target=config.target, test_csv=config.test_csv,
                           drop_na=config.drop_na, task=config.task or CLASSIFICATION)
    if config.task and config.task != dataset.task:
        raise UserError(f"--task {config.task}: the dataset {config.dataset} is a {dataset.task} dataset")
    return dataset


def describe_test(test: dict, dataset: Dataset) -> str:
    n = len(dataset.test[0])
    if dataset.task == CLASSIFICATION:
        return f"Test accuracy: {test['accuracy']:.2%} ({n} {'images' if len(dataset.input_shape) == 2 else 'rows'})"
    return f"Test RMSE: {test['rmse']:.4g}  R^2: {test['r2']:.4f} ({n} rows)"


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user mistakes are one line on stderr and exit status 2; an interrupted
    run exits 130 (Ctrl-C) or 143 (SIGTERM), a diverged one 1, after saving what it had."""
    def action():
        config = parse_config(argv)
        resume = None
        if config.resume:
            checkpoint = load_checkpoint(config.resume)
            model_fn = config.model_fn
            config = TrainConfig.from_dict(checkpoint["config"])
            config.model_fn = model_fn or config.model_fn
            resume = checkpoint["trainer"]
        run(config, resume)

    try:
        run_cli("mnist-train", action)
    except TrainingInterrupted as stop:
        sys.exit(130 if stop.reason == "SIGINT" else 143)
    except TrainingDiverged:
        sys.exit(1)


if __name__ == "__main__":
    main()
