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

from .config import LR_SCHEDULES, TrainConfig
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
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default: %(default)s)")
    p.add_argument("--lr_schedule", choices=LR_SCHEDULES, default="cosine",
                   help="cosine: decay the learning rate to 0 over the run; constant: the seed's fixed rate "
                        "(default: %(default)s)")
    p.add_argument("--data_dir", default="data", help="where MNIST is kept (default: %(default)s)")
    return p


def parse_config(argv: list[str] | None = None) -> TrainConfig:
    """Flags -> a validated ``TrainConfig``."""
    config = TrainConfig(**vars(build_parser().parse_args(argv)))
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
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)


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

    input_size, output_size = x.size(-1), int(y.max()) + 1
    model = ImageClassifier(
        input_size,
        output_size,
        get_hidden_sizes(input_size, output_size, config.n_layers),
        use_batch_norm=not config.use_dropout,
        dropout_p=config.dropout_p,
    ).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    crit = nn.NLLLoss()
    say(model)

    trainer = Trainer(model, optimizer, crit, make_scheduler(optimizer, config, len(train_data[0])))
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
