"""The command line: train the seed's classifier on MNIST, save it, report the test accuracy."""

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
from .config import LR_SCHEDULES, PRESETS, TrainConfig
from .data import load_mnist
from .errors import UserError
from .model import ImageClassifier
from .model_file import save_model_file
from .trainer import Trainer, evaluate
from .utils import default_gpu_id, get_device, get_hidden_sizes, split_data


class _OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line on stderr (no usage dump), still with exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _OneLineParser(prog="mnist-train", description=__doc__)
    p.add_argument("--model_fn", required=True, help="where to save the trained model file")
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
    p.add_argument("--verbose", type=int, default=1, help="0: quiet, 1: a line per epoch (default: %(default)s)")
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
    p.add_argument("--patience", type=int, default=0,
                   help="stop after this many epochs without a lower validation loss; 0: never (default: 0)")
    p.add_argument("--compile", action="store_true",
                   help="compile the training step with torch.compile: faster epochs after a slow first one")
    p.add_argument("--amp", action="store_true",
                   help="bfloat16 mixed precision: about 2.5x faster on CPUs with AVX512-BF16 and on recent GPUs")
    p.add_argument("--preset", choices=sorted(PRESETS),
                   help="a named set of defaults, e.g. record (see README); flags given too still win")
    p.add_argument("--data_dir", default="data", help="where MNIST is kept (default: %(default)s)")
    return p


def _int_list(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def parse_config(argv: list[str] | None = None) -> TrainConfig:
    """Flags -> a validated ``TrainConfig``; a ``--preset`` supplies defaults, explicit flags win."""
    pre = _OneLineParser(prog="mnist-train", add_help=False)
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
                  device: torch.device) -> Trainer:
    """The model, optimizer, loss and schedule that ``config`` asks for, wired into a ``Trainer``."""
    hidden_sizes = config.hidden_sizes or get_hidden_sizes(input_size, output_size, config.n_layers)
    model = ImageClassifier(
        input_size, output_size, hidden_sizes, use_batch_norm=not config.use_dropout, dropout_p=config.dropout_p
    ).to(device)
    # The fused kernel updates all parameters at once; the default per-parameter loop took about a
    # fifth of every CPU training step (torch.profiler). AdamW with weight_decay=0 is Adam.
    fused = device.type in ("cpu", "cuda")
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=fused)
    return Trainer(
        model,
        optimizer,
        make_loss(config),
        make_scheduler(optimizer, config, n_train),
        compile=config.compile,
        amp=config.amp,
        augment=make_augment(config, input_size),
        patience=config.patience,
    )


def make_loss(config: TrainConfig) -> nn.Module:
    """NLLLoss on the model's log-probabilities, as the seed; label smoothing when asked."""
    if not config.label_smoothing:
        return nn.NLLLoss()
    # log_softmax leaves log-probabilities unchanged, so CrossEntropyLoss on them is NLLLoss
    # with label smoothing, computed by torch itself.
    return nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)


def make_augment(config: TrainConfig, input_size: int) -> RandomDistortion | None:
    if not config.augment:
        return None
    side = math.isqrt(input_size)
    if side * side != input_size:
        raise UserError(f"--augment needs square images, but the inputs have {input_size} values")
    return RandomDistortion(side)


def run(config: TrainConfig) -> dict:
    """Train, save and test as ``config`` says; return the test metrics."""
    device = get_device(config.gpu_id)
    check_writable(config.model_fn)
    if config.seed is None:
        config.seed = random.SystemRandom().randrange(2**31)  # saved, so any run can be repeated
    torch.manual_seed(config.seed)

    # Load the test set up front too: a data problem should show before training, not after.
    x, y = load_mnist(is_train=True, data_dir=config.data_dir)
    test_data = load_mnist(is_train=False, data_dir=config.data_dir)
    train_data, valid_data = split_data(x, y, config.train_ratio)
    say = print if config.verbose >= 1 else (lambda *a, **k: None)
    say(f"Train {tuple(train_data[0].shape)}, valid {tuple(valid_data[0].shape)}, test {tuple(test_data[0].shape)}"
        f" on {device}, seed {config.seed}")

    output_size = int(y.max()) + 1
    trainer = build_trainer(config, x.size(-1), output_size, len(train_data[0]), device)
    model, optimizer, crit = trainer.model, trainer.optimizer, trainer.crit
    say(model)
    started = time.perf_counter()
    history = trainer.train(train_data, valid_data, config)
    train_seconds = time.perf_counter() - started

    save_model_file(
        config.model_fn, model, optimizer, config.to_dict(),
        history=history, classes=[str(c) for c in range(output_size)],
        best_epoch=trainer.best_epoch, train_seconds=train_seconds,
    )
    test = evaluate(model, crit, test_data, config.batch_size)
    say(f"Saved the best model (epoch {trainer.best_epoch}, valid_loss={trainer.best_valid_loss:.4e})"
        f" to {config.model_fn}; training took {train_seconds:.1f}s")
    print(f"Test accuracy: {test['accuracy']:.2%} ({len(test_data[0])} images)")
    return test


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user mistakes become one line on stderr and exit status 2."""
    try:
        run(parse_config(argv))
    except UserError as e:
        print(f"mnist-train: error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
