"""``mnist-train``: train the seed's classifier (on MNIST by default), save it, report the test result."""

from __future__ import annotations

import argparse
import contextlib
import functools
import random
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from ..data.dataset import CLASSIFICATION, REGRESSION, Dataset, data_change, fingerprint
from ..data.datasets import load_dataset
from ..data.preprocessing import describe_columns, target_scale
from ..errors import SaveFailed, UserError, first_line
from ..inference.model_file import save_model_file
from ..models import MODELS
from ..training.build import REGRESSION_LOSSES, build_trainer
from ..training.callbacks import EarlyStopping, EpochPrinter, EveryEpochs, ProgressBar, StopOnSignals, exit_on_signals
from ..training.checkpoint import load_checkpoint, save_checkpoint
from ..training.config import (
    LR_SCHEDULES,
    MODEL_DEFAULTS,
    PRESETS,
    TABLE_DEFAULTS,
    TrainConfig,
    is_table,
    table_schedule,
)
from ..training.distributed import DEFAULT_TIMEOUT_S, DataParallel, data_parallel
from ..training.outputs import check_outputs, writing
from ..training.precision import AMP_CHOICES, BFLOAT16
from ..training.run_log import RunLog, TensorBoardLog, companion_paths
from ..training.trainer import PeerLost, Trainer, TrainingDiverged, TrainingInterrupted, TrainingStopped, evaluate
from ..utils import default_gpu_id, get_device, split_indices
from . import OneLineParser, delimiter_word, run_cli


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="mnist-train", description=__doc__)
    p.add_argument("--model_fn", help="where to save the trained model file (required, except with --resume)")
    p.add_argument("--gpu_id", type=int, default=default_gpu_id(),
                   help="CUDA device index, -1 for the CPU (default: %(default)s)")
    p.add_argument("--train_ratio", type=float, default=0.8,
                   help="share of the training set used for training; the rest validates (default: %(default)s)")
    p.add_argument("--batch_size", type=int, default=256, help="mini-batch size (default: %(default)s)")
    p.add_argument("--n_epochs", type=int, default=20, help="number of epochs (default: %(default)s)")
    p.add_argument("--verbose", type=int, default=1,
                   help="0: only the result; 1: a line per epoch and, on a terminal, a progress bar (default: 1)")
    p.add_argument("--seed", type=int, default=None,
                   help="random seed for a repeatable run (default: a random one, saved in the model file)")
    p.add_argument("--lr", type=float, default=1e-3,
                   help="Adam's learning rate; the peak rate with onecycle (default: %(default)s)")
    p.add_argument("--lr_schedule", choices=LR_SCHEDULES, default="cosine",
                   help="cosine: decay the learning rate to 0 over the run; onecycle: warm up, then decay; "
                        "constant: the seed's fixed rate (default: %(default)s)")
    p.add_argument("--weight_decay", type=float, default=0.0,
                   help="decoupled weight decay (AdamW); 0 is plain Adam (default: %(default)s)")
    p.add_argument("--label_smoothing", type=float, default=0.0,
                   help="share of each target spread over all classes (default: %(default)s)")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=False,
                   help="distort training images (random affine and elastic) on every batch")
    p.add_argument("--hflip", action=argparse.BooleanOptionalAction, default=False,
                   help="mirror half the training images left-right (for clothes, not for digits)")
    p.add_argument("--shift_px", type=float, default=0.0,
                   help="shift training images by up to this many pixels (without --augment) (default: 0; cnn: 2)")
    p.add_argument("--patience", type=int, default=0,
                   help="stop after this many epochs without a lower validation loss; 0: never (default: 0)")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=False,
                   help="compile the training step with torch.compile (a few percent faster per epoch on a CPU)")
    p.add_argument("--amp", nargs="?", const="on", choices=AMP_CHOICES, default="auto",
                   help="bfloat16 mixed precision. auto: where this hardware runs this model faster (a timed "
                        "probe on GPUs and CPUs with bf16 kernels; fp32 elsewhere); on (also plain --amp); off: "
                        "float32, the seed's numerics. on and off repeat exactly (default: %(default)s)")
    p.add_argument("--no-amp", dest="amp", action="store_const", const="off", help="the same as --amp off")
    p.add_argument("--model", choices=list(MODELS), default="mlp",
                   help="the model family: mlp (the seed's), cnn or rnn (default: %(default)s)")
    p.add_argument("--preset", choices=sorted({name for presets in PRESETS.values() for name in presets}),
                   help="a named set of defaults, e.g. record (see README); flags given too still win")
    p.add_argument("--dataset", default="mnist",
                   help="mnist, fashion-mnist, digits, diabetes or csv:PATH (default: %(default)s)")
    p.add_argument("--task", choices=[CLASSIFICATION, REGRESSION],
                   help="for csv:PATH: what the target is (default: classification; built-in sets know theirs)")
    p.add_argument("--target", help="for csv:PATH: the target column (default: the last one)")
    p.add_argument("--test_csv", help="for csv:PATH: a separate test file (default: 20%% of the file)")
    p.add_argument("--drop_na", action="store_true", help="for csv:PATH: drop rows with empty or NaN cells")
    p.add_argument("--delimiter", type=delimiter_word,
                   help="for csv:PATH: the character between cells, or tab (default: sniffed from the file: "
                        "comma, semicolon, tab or |)")
    p.add_argument("--loss", choices=["nll", *REGRESSION_LOSSES],
                   help="nll for classification (the default); mse (default), l1 or huber for regression")
    p.add_argument("--data_dir", default="data", help="where downloaded datasets are kept (default: %(default)s)")
    p.add_argument("--tensorboard", metavar="DIR",
                   help="also write TensorBoard event files (losses, accuracy, learning rate per epoch) into DIR; "
                        "needs the tensorboard package")
    p.add_argument("--checkpoint_every", type=int, default=0,
                   help="write a resumable checkpoint every N epochs; 0: only when interrupted (default: 0)")
    p.add_argument("--checkpoint_fn", help="where checkpoints go (default: MODEL_FN.ckpt)")
    p.add_argument("--resume", metavar="CHECKPOINT",
                   help="continue the run saved in CHECKPOINT, with its configuration")
    p.add_argument("--sync_bn", action=argparse.BooleanOptionalAction, default=False,
                   help="under torchrun: batch norm over the global batch instead of each process's share")
    p.add_argument("--dist_timeout", type=float, default=DEFAULT_TIMEOUT_S,
                   help="under torchrun: seconds to wait for a silent process before the run stops "
                        "(default: %(default)s)")
    add_model_options(p.add_argument_group("model options (each applies to the models named in its help)"))
    return p


def add_model_options(group) -> None:
    """One flag per option name of the registered models; unset flags stay None, so that each model's
    own default applies (``--n_layers`` is 5 for the MLP, 1 for the RNN)."""
    families: dict[str, list[str]] = {}
    for model, module in MODELS.items():
        for name in module.OPTIONS:
            families.setdefault(name, []).append(model)
    for name, models in families.items():
        specs = [MODELS[m].OPTIONS[name] for m in models]
        differ = len({spec.help for spec in specs}) > 1
        described = "; ".join(f"{m}: {spec.help + ', ' if differ else ''}default {_shown(spec.default)}"
                              for m, spec in zip(models, specs, strict=True))
        help_text = f"{'' if differ else specs[0].help + ' '}({described})"
        if specs[0].kind is bool:
            group.add_argument(f"--{name}", action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            kind = _int_list if specs[0].kind is list else specs[0].kind
            group.add_argument(f"--{name}", type=kind, default=None, choices=specs[0].choices, help=help_text)


def _shown(value) -> str:
    if isinstance(value, list):
        return ",".join(map(str, value))
    return "computed from the other options" if value is None else str(value)


def _int_list(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def parse_config(argv: list[str] | None = None) -> TrainConfig:
    """Flags -> a validated ``TrainConfig``. The model's own training defaults and a ``--preset``
    supply defaults; explicit flags win."""
    pre = OneLineParser(prog="mnist-train", add_help=False)
    pre.add_argument("--preset")
    pre.add_argument("--model", choices=list(MODELS), default="mlp")
    pre.add_argument("--dataset", default="mnist")
    known = pre.parse_known_args(argv)[0]
    defaults = dict(MODEL_DEFAULTS.get(known.model, {}))
    if known.model == "mlp" and is_table(known.dataset):
        defaults.update(TABLE_DEFAULTS)
    presets = PRESETS.get(known.model, {})
    if known.preset:
        if known.preset not in presets:
            raise UserError(f"--preset {known.preset}: there is none for --model {known.model} (presets: "
                            f"{', '.join(presets) or 'none'})")
        defaults.update(presets[known.preset])
    parser = build_parser()
    parser.set_defaults(**defaults)
    values = vars(parser.parse_args(argv))
    explicit = given_flags(argv)
    if "n_layers" in explicit and "hidden_sizes" not in explicit:
        values["hidden_sizes"] = None  # an explicit depth beats a preset's sizes
    option_names = {name for module in MODELS.values() for name in module.OPTIONS}
    given = {name: values.pop(name) for name in option_names}
    config = TrainConfig(**values, model_options={k: v for k, v in given.items() if v is not None})
    if config.resume:
        return config  # the checkpoint's configuration is validated, with what may change (resumed_config)
    config.validate()
    return config


def given_flags(argv: list[str] | None) -> set[str]:
    """The names of the flags given on the command line (not those left at their defaults)."""
    parser = build_parser()
    for action in parser._actions:  # argparse has no public way to drop every default
        action.default = argparse.SUPPRESS
    return set(vars(parser.parse_args(argv)))


# What may change when a run is resumed; everything else is the checkpoint's. A longer run needs a
# fixed learning rate: a cosine or one-cycle schedule was planned for the original length.
RESUME_MAY_CHANGE = ("resume", "model_fn", "checkpoint_fn", "gpu_id", "data_dir", "verbose", "n_epochs", "amp",
                     "dist_timeout", "tensorboard")


def resumed_config(checkpoint_fn: str, saved: dict, explicit: dict) -> TrainConfig:
    """The checkpoint's configuration, validated like flags, with the flags that may change applied."""
    refused = sorted(set(explicit) - set(RESUME_MAY_CHANGE))
    if refused:
        raise UserError(f"--{refused[0]} cannot change when resuming {checkpoint_fn} (the run continues with its "
                        f"saved configuration); only {', '.join('--' + f for f in RESUME_MAY_CHANGE[1:])} can")
    config = _saved_config(checkpoint_fn, saved)
    if "n_epochs" in explicit and explicit["n_epochs"] != config.n_epochs and config.lr_schedule != "constant":
        raise UserError(f"--n_epochs cannot change when resuming {checkpoint_fn}: its {config.lr_schedule} "
                        f"learning-rate schedule was planned for {config.n_epochs} epochs")
    # Output paths come from the command line or sit beside the checkpoint, never from inside it:
    # an edited checkpoint must not choose which file gets overwritten.
    config.model_fn = str(Path(checkpoint_fn).parent / Path(config.model_fn).name)
    config.checkpoint_fn = checkpoint_fn
    for name, value in explicit.items():
        if name != "resume":
            setattr(config, name, value)
    if "amp" in explicit:  # e.g. resumed on other hardware: choose the precision again
        config.precision = config.precision_reason = None
    config.resume = checkpoint_fn
    config.validate()  # now the flags given: their errors name them, not the checkpoint
    return config


def _saved_config(checkpoint_fn: str, saved: dict) -> TrainConfig:
    """The configuration inside a checkpoint, checked as flags are, blaming the file for what fails."""
    try:
        config = TrainConfig.from_dict(saved)
        config.validate()
    except (TypeError, KeyError, ValueError, AttributeError) as e:
        raise UserError(f"{checkpoint_fn}: the checkpoint's configuration is damaged ({e})") from e
    except UserError as e:
        raise UserError(f"{checkpoint_fn}: the checkpoint's configuration is refused: {e}") from e
    return config


def run(config: TrainConfig, resume: dict | None = None, resumed_data: dict | None = None,
        parallel: DataParallel | None = None) -> dict:
    """Train, save and test as ``config`` says; return the test metrics.

    ``resume`` is a trainer snapshot from a checkpoint: training continues after its epoch, on the
    data whose fingerprint is ``resumed_data``. Ctrl-C or SIGTERM saves the best model and a
    checkpoint, then raises ``TrainingInterrupted``; a NaN loss saves the best model, then raises
    ``TrainingDiverged``. Output paths are checked first and ``--model_fn`` is locked while it runs.

    ``parallel``: this process's rank in a torchrun job; rank 0 alone checks and writes the files,
    prints and tests (the other ranks return no metrics).
    """
    beside = companion_paths(config.model_fn)
    outputs = {"--model_fn": config.model_fn, "--checkpoint_fn": checkpoint_path(config),
               "--model_fn's history": beside["history"], "--model_fn's configuration": beside["config"]}
    with contextlib.ExitStack() as held:
        def claim() -> None:  # check the outputs, then hold them while the run writes
            check_outputs(outputs, input_paths(config), updates={"--checkpoint_fn": "--resume"})
            held.enter_context(writing(outputs))

        if parallel is None:
            claim()
        else:
            parallel.agree(claim)  # rank 0 claims them; its refusal stops every rank
        return _run(config, resume, resumed_data, parallel)


def input_paths(config: TrainConfig) -> dict[str, str]:
    """The files this run reads, which it must never write."""
    paths = {"--dataset": config.dataset[4:] if config.dataset.startswith("csv:") else None,
             "--test_csv": config.test_csv, "--resume": config.resume}
    return {flag: path for flag, path in paths.items() if path}


def _run(config: TrainConfig, resume: dict | None, resumed_data: dict | None, parallel: DataParallel | None
         ) -> dict:
    device = parallel.device if parallel is not None else get_device(config.gpu_id)
    _set_world_size(config, parallel, resume is not None)
    if config.seed is None:
        draw = lambda: random.SystemRandom().randrange(2**31)  # noqa: E731 (saved, so any run can be repeated)
        config.seed = parallel.agree(draw) if parallel is not None else draw()
    torch.manual_seed(config.seed)  # the same validation split (and initial model) on every rank
    if parallel is not None:
        parallel.seed = config.seed

    # The test set is loaded up front too: a data problem should show before training, not after.
    load = lambda: load_configured_dataset(config)  # noqa: E731
    raw = parallel.leader_first(load) if parallel is not None else load()
    train_rows, valid_rows = split_indices(len(raw), config.train_ratio)
    dataset = raw.prepared(raw.fit_preprocessing(train_rows))  # statistics of the training rows alone
    data_now = functools.cache(lambda: fingerprint(dataset))  # hashing costs a moment: only when needed
    if parallel is not None:
        parallel.check_same_data(data_now())
    if resume is not None:
        _check_resumed_data(config.resume, resumed_data, data_now)
    x, y = dataset.train
    train_data, valid_data = (x[train_rows], y[train_rows]), (x[valid_rows], y[valid_rows])
    _size_table_run(config, len(train_rows) // config.world_size)
    rows_per_rank = len(train_data[0]) // config.world_size
    if rows_per_rank < config.batch_size:
        per_rank = f" per process ({config.world_size} processes)" if parallel is not None else ""
        raise UserError(f"{dataset.name}: {rows_per_rank} training rows{per_rank} after the validation split, fewer "
                        f"than one batch (--batch_size {config.batch_size}); lower --batch_size")
    main_rank = parallel is None or parallel.is_main
    say = print if config.verbose >= 1 and main_rank else (lambda *a, **k: None)

    def checkpoint(trainer: Trainer) -> None:
        if main_rank:
            save_checkpoint(checkpoint_path(config), trainer, config.to_dict(), data=data_now())

    trainer = build_trainer(config, dataset.input_shape, dataset.output_size, len(train_data[0]), device,
                            dataset.task, callbacks=make_callbacks(config, checkpoint, main_rank), parallel=parallel)
    where = f"{device}" if parallel is None else (f"{parallel.describe()} on {device.type}, global batch "
                                                  f"{config.batch_size * config.world_size}")
    say(f"{dataset.name}: train {tuple(train_data[0].shape)}, valid {tuple(valid_data[0].shape)}, "
        f"test {tuple(dataset.test[0].shape)} on {where}, {precision_words(config)}, seed {config.seed}, "
        f"model {config.model}")
    if not dataset.is_image:
        say(f"Table of {describe_columns(dataset.preprocessing)} -> {dataset.input_size} model inputs; batch size "
            f"{config.batch_size}, {config.n_epochs} epochs")
    if resume is not None:
        _restore(trainer, resume, config.resume)
        say(f"Resuming after epoch {len(trainer.history)}")
    say(trainer.model)
    started = time.perf_counter()

    def save_best(**extra) -> None:
        trainer.model.load_state_dict(trainer.best_state)
        # The optimizer's state is the last epoch's, which may come after the best one: say which.
        save_model_file(config.model_fn, trainer.model, trainer.optimizer, config.to_dict(),
                        preprocessing=dataset.preprocessing, dataset=dataset.metadata(), classes=dataset.classes,
                        history=trainer.history, best_epoch=trainer.best_epoch, opt_epoch=len(trainer.history),
                        train_seconds=time.perf_counter() - started, data=data_now(), **extra)

    # Outside the loop (while saving, between epochs' end and the save) a signal exits at once, cleanly;
    # inside it, StopOnSignals takes over and asks the trainer to stop after the batch.
    with exit_on_signals():
        try:
            trainer.train(train_data, valid_data, config.n_epochs, config.batch_size)
        except TrainingStopped as stop:
            if parallel is None:
                _save_after_stop(stop, trainer, config, save_best, checkpoint)
                raise
            _stop_together(stop, parallel, functools.partial(_save_after_stop, stop, trainer, config, save_best,
                                                             checkpoint))
            raise
        except SaveFailed as failed:  # a checkpoint could not be written: keep the best model, then stop
            _save_after_failed_checkpoint(failed, trainer, config, save_best)
        if not main_rank:
            return {}
        save_best()
    say(f"Saved the best model (epoch {trainer.best_epoch}, valid_loss={trainer.best_valid_loss:.4e})"
        f" to {config.model_fn}; training took {time.perf_counter() - started:.1f}s")
    test = test_metrics(trainer, dataset, config)
    print(describe_test(test, dataset))
    return test


def _size_table_run(config: TrainConfig, rows: int) -> None:
    """Batch size and epochs a table run left to the defaults, from its training rows (per process)."""
    if config.batch_size is None or config.n_epochs is None:
        batch, epochs = table_schedule(rows, config.batch_size)
        config.batch_size = batch
        config.n_epochs = config.n_epochs or epochs


def _stop_together(stop: TrainingStopped, parallel: DataParallel, save: Callable[[], None]) -> None:
    """A distributed run that stopped: rank 0 saves what it has while the others wait for it.

    As soon as one process exits with an error, torchrun's agent stops the others with SIGTERM (and
    kills them after its own timeout, 30 s by default): rank 0 ignores it while saving. After an
    agreed stop (Ctrl-C, divergence) the others also wait until the files are written; after a lost
    peer there is no one left to wait with.
    """
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if parallel.is_main:
        save()
    elif isinstance(stop, PeerLost):
        print(f"mnist-train: {stop}", file=sys.stderr)
    if not isinstance(stop, PeerLost):
        with contextlib.suppress(UserError):  # a peer lost while saving: nothing more to do
            parallel.barrier()


def _set_world_size(config: TrainConfig, parallel: DataParallel | None, resumed: bool) -> None:
    """Record how many processes train; a resumed run must have as many as it began with (each
    process's steps per epoch, and so the global batch and the schedule, depend on it)."""
    now = parallel.world_size if parallel is not None else 1
    if resumed and config.world_size != now:
        launch = (f"torchrun --nproc_per_node {config.world_size} (or as many processes over several machines)"
                  if config.world_size > 1 else "mnist-train, without torchrun")
        raise UserError(f"--resume {config.resume}: the run was trained by {config.world_size} process(es), this is "
                        f"{now}; resume it with {launch}")
    config.world_size = now


def _check_resumed_data(checkpoint_fn: str, then, data_now: Callable[[], dict]) -> None:
    """Refuse to resume on training data other than the checkpoint's."""
    if then is None:  # checkpoints from before fingerprints: nothing to compare
        print(f"mnist-train: {checkpoint_fn} holds no fingerprint of its training data (an older release); "
              "resuming without checking the data is the same", file=sys.stderr)
        return
    if not isinstance(then, dict):
        raise UserError(f"--resume {checkpoint_fn}: the checkpoint's data fingerprint is damaged")
    change = data_change(then, data_now())
    if change:
        raise UserError(f"--resume {checkpoint_fn}: the training data changed since the checkpoint ({change}); "
                        "resume with the same data, or start a new run")


def _restore(trainer: Trainer, state: dict, checkpoint_fn: str) -> None:
    """Continue from a checkpoint's trainer state (after building: the random generators too)."""
    try:
        trainer.load_state_dict(state)
    except (KeyError, TypeError, ValueError, RuntimeError) as e:  # a damaged or hand-edited file
        raise UserError(f"--resume {checkpoint_fn}: the checkpoint's training state is damaged "
                        f"({type(e).__name__}: {first_line(e)})") from e


def make_callbacks(config: TrainConfig, checkpoint: Callable[[Trainer], None], main_rank: bool = True) -> list:
    """What the run does around the loop, as ``config`` asks: printing, early stop, checkpoints, signals.
    Only the main process of a distributed run prints."""
    shown = config.verbose >= 1 and main_rank
    callbacks = [ProgressBar(), EpochPrinter()] if shown else []
    if config.patience:
        callbacks.append(EarlyStopping(config.patience, verbose=shown))
    if main_rank:  # the epoch's row is written before a checkpoint that might fail
        callbacks.append(RunLog(config.model_fn, config))
        if config.tensorboard:
            callbacks.append(TensorBoardLog(config.tensorboard, config))
    if config.checkpoint_every:
        callbacks.append(EveryEpochs(config.checkpoint_every, checkpoint))
    return [*callbacks, StopOnSignals(announce=main_rank)]


def test_metrics(trainer: Trainer, dataset: Dataset, config: TrainConfig) -> dict:
    """The test set's metrics; for regression every one in the target's own units."""
    # In float32 whatever the training precision: what every consumer of the model file will measure.
    test = evaluate(trainer.model, trainer.crit, dataset.test, config.batch_size)
    if dataset.task == REGRESSION:
        # Targets were standardised for training; undo it for what people read.
        scale = target_scale(dataset.preprocessing)
        test = {"mse": test["mse"] * scale**2, "rmse": test["mse"] ** 0.5 * scale, "r2": test["r2"]}
    return test


def precision_words(config: TrainConfig) -> str:
    """E.g. "fp32 (auto: this CPU (AVX2) has no bf16 kernels)": what the run computes in, and why."""
    short = "bf16" if config.precision == BFLOAT16 else "fp32"
    return f"{short} ({config.precision_reason})" if config.precision_reason else short


def checkpoint_path(config: TrainConfig) -> str:
    return config.checkpoint_fn or f"{config.model_fn}.ckpt"


def _save_after_stop(stop: TrainingStopped, trainer: Trainer, config: TrainConfig, save_best, checkpoint) -> None:
    """Keep what the stopped run achieved: its best model and, when interrupted, a checkpoint."""
    print(f"mnist-train: {stop}", file=sys.stderr)
    if trainer.snapshot is None:
        print("mnist-train: no epoch was completed; nothing was saved", file=sys.stderr)
        return
    save_best(stopped=str(stop))
    where = f"the best model so far (epoch {trainer.best_epoch}) is in {config.model_fn}"
    if isinstance(stop, TrainingInterrupted | PeerLost):
        checkpoint(trainer)
        command = "torchrun ... train.py" if config.world_size > 1 else "mnist-train"
        where += (f"; continue from epoch {len(trainer.snapshot['history']) + 1} with "
                  f"`{command} --resume {checkpoint_path(config)}`")
    print(f"mnist-train: {where}", file=sys.stderr)


def _save_after_failed_checkpoint(failed: SaveFailed, trainer: Trainer, config: TrainConfig, save_best) -> None:
    epoch = len(trainer.history)
    try:
        save_best(stopped=f"checkpoint failed after epoch {epoch}")
    except SaveFailed as also:
        raise SaveFailed(f"{failed}; training stopped after epoch {epoch}; the model could not be saved either: "
                         f"{also}") from failed
    raise SaveFailed(f"{failed}; training stopped after epoch {epoch}; the best model so far (epoch "
                     f"{trainer.best_epoch}) is in {config.model_fn}") from failed


def load_configured_dataset(config: TrainConfig) -> Dataset:
    """The dataset ``--dataset`` names, checked against ``--task``."""
    dataset = load_dataset(config.dataset, config.data_dir, target=config.target, test_csv=config.test_csv,
                           drop_na=config.drop_na, task=config.task or CLASSIFICATION, delimiter=config.delimiter)
    if config.task and config.task != dataset.task:
        raise UserError(f"--task {config.task}: the dataset {config.dataset} is a {dataset.task} dataset")
    return dataset


def describe_test(test: dict, dataset: Dataset) -> str:
    n = len(dataset.test[0])
    if dataset.task == CLASSIFICATION:
        return f"Test accuracy: {test['accuracy']:.2%} ({n} {'images' if dataset.is_image else 'rows'})"
    return f"Test RMSE: {test['rmse']:.4g}  R^2: {test['r2']:.4f} ({n} rows)"


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user mistakes are one line on stderr and exit status 2; an interrupted
    run exits 130 (Ctrl-C) or 143 (SIGTERM), a diverged one 1, after saving what it had."""
    def action():
        config = parse_config(argv)
        checkpoint = {}
        if config.resume:  # every rank reads it: on several machines, put it where each can
            checkpoint = load_checkpoint(config.resume)
            explicit = {name: getattr(config, name, None) for name in given_flags(argv)}
            config = resumed_config(config.resume, checkpoint["config"], explicit)
        # Joined with the resumed configuration: its --gpu_id, unless given again, says CPUs or GPUs.
        with data_parallel(config.gpu_id, config.dist_timeout) as parallel:
            if config.sync_bn and parallel is None and not config.resume:
                print("mnist-train: note: --sync_bn has no effect in a single process (it is for torchrun)",
                      file=sys.stderr)
            run(config, checkpoint.get("trainer"), checkpoint.get("data"), parallel)

    try:
        run_cli("mnist-train", action)
    except TrainingInterrupted as stop:
        sys.exit(130 if stop.reason == "SIGINT" else 143)
    except (TrainingDiverged, PeerLost):
        sys.exit(1)


if __name__ == "__main__":
    main()
