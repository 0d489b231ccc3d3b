"""The configured training run behind ``mnist-train``: claim the output files, load and prepare the
data, train, save the best model, test it; and keep what it achieved when it stops early."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import random
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from ..data.dataset import CLASSIFICATION, REGRESSION, Dataset, data_change, fingerprint, take_rows
from ..data.preprocessing import target_scale
from ..errors import SaveFailed, UserError, first_line
from ..files import companion_paths
from ..inference.model_file import load_model_file, save_model_file
from ..kinds import load_dataset, source_path
from ..training.build import build_trainer
from ..training.callbacks import EveryEpochs, StopOnSignals
from ..training.checkpoint import save_checkpoint
from ..training.config import RunFacts, TrainConfig, family_candidates, saved_record, source_options
from ..training.distributed import PeerLost, regrouped_batch_size
from ..training.fine_tune import pretrained_state
from ..training.metrics import evaluate
from ..training.model_choice import Choice, choose
from ..training.outputs import check_outputs, writing
from ..training.precision import BFLOAT16
from ..training.run_log import RunLog, TensorBoardLog, write_config, write_history
from ..training.strategy import SingleProcess
from ..training.trainer import Trainer, TrainingInterrupted, TrainingStopped
from ..utils import get_device, split_indices


def run(config: TrainConfig, resume: dict | None = None, resumed_data: dict | None = None,
        strategy=None, facts: RunFacts | None = None) -> dict:
    """Train, save and test as ``config`` says; return the test metrics.

    ``resume`` is a trainer snapshot from a checkpoint: training continues after its epoch, on the
    data whose fingerprint is ``resumed_data``, with the checkpoint's ``facts`` (its precision, its
    number of processes). Ctrl-C or SIGTERM saves the best model and a
    checkpoint, then raises ``TrainingInterrupted``; a NaN loss saves the best model, then raises
    ``TrainingDiverged``. Output paths are checked first and ``--model_fn`` is locked while it runs.

    ``strategy``: one process on ``--gpu_id`` by default, or this process's rank in a torchrun job
    (``distributed.DataParallel``): rank 0 alone checks and writes the files, prints and tests (the
    other ranks return no metrics).
    """
    strategy = strategy or SingleProcess(get_device(config.gpu_id))
    beside = companion_paths(config.model_fn)
    outputs = {"--model_fn": config.model_fn, "--checkpoint_fn": checkpoint_path(config),
               "--model_fn's history": beside["history"], "--model_fn's configuration": beside["config"]}
    with contextlib.ExitStack() as held:
        def claim() -> None:  # check the outputs, then hold them while the run writes
            check_outputs(outputs, input_paths(config), updates={"--checkpoint_fn": "--resume"},
                          folders={"--tensorboard": config.tensorboard})
            held.enter_context(writing(outputs))

        strategy.agree(claim)  # rank 0 claims them; its refusal stops every rank
        return _run(config, facts or RunFacts(), resume, resumed_data, strategy)


def input_paths(config: TrainConfig) -> dict[str, str]:
    """The files this run reads, which it must never write."""
    paths = {"--dataset": source_path(config.dataset),
             "--test_csv": config.test_csv, "--resume": config.resume, "--init_from": config.init_from}
    return {flag: path for flag, path in paths.items() if path}


@dataclasses.dataclass
class _Data:
    """What every family a run trains shares: the prepared data, where it trains, who prints."""

    dataset: Dataset
    train: tuple
    valid: tuple
    fingerprint: Callable[[], dict]
    strategy: SingleProcess
    say: Callable

    @property
    def main_rank(self) -> bool:
        return self.strategy.is_main

    @property
    def device(self) -> torch.device:
        return self.strategy.device


def _run(config: TrainConfig, facts: RunFacts, resume: dict | None, resumed_data: dict | None, strategy) -> dict:
    """The run in the order things happen. The configuration is settled as far as the flags go; what
    only the run can settle (the seed drawn, a table's batch size, a folder's picture size) makes a
    new one, and what it finds out (the processes, then each family's precision) goes into ``facts``."""
    config = _on_processes(config, facts, strategy, resume is not None)
    config = _seeded(config, strategy)
    config, dataset, train_data, valid_data, data_now = _prepare_data(config, strategy, resume, resumed_data)
    say = print if config.verbose >= 1 and strategy.is_main else (lambda *a, **k: None)
    data = _Data(dataset, train_data, valid_data, data_now, strategy, say)
    _describe_data(data, config)
    candidates = family_candidates(config)
    if len(candidates) > 1:
        simple, other = (c.model for c in candidates)
        say(f"--model auto: training {simple} and {other} on the same rows; the lower validation loss is kept")
    generators = torch.get_rng_state()  # each family starts where a run of it alone would
    kept: tuple[Trainer, TrainConfig, RunFacts] | None = None
    for candidate in candidates:
        torch.set_rng_state(generators)
        found = dataclasses.replace(facts)  # each family chooses its own precision
        trainer, choice = _train_family(candidate, found, data, resume, rival=kept[0] if kept else None)
        if kept is not None:
            say(f"--model auto: {choice.words(candidate.model, kept[1].model)}")
        if kept is None or choice.challenger_wins:
            kept = (trainer, candidate, found)
    if not strategy.is_main:
        return {}
    trainer, config, _ = kept
    if len(candidates) > 1:
        _keep_companions(candidates, kept, data)
    test = test_metrics(trainer, dataset, config)
    print(describe_test(test, dataset))
    return test


def _describe_data(data: _Data, config: TrainConfig) -> None:
    """What was found in the data, before any training: a folder's classes, a table's columns, notes."""
    dataset, say = data.dataset, data.say
    line = dataset.kind.from_dict(dataset.preprocessing).first_line(dataset, config)
    if line:
        say(line)
    for note in [*dataset.notes, *imbalance_note(dataset, data.train[1], config)] if data.main_rank else ():
        print(f"mnist-train: {note}", file=sys.stderr)


def _train_family(config: TrainConfig, facts: RunFacts, data: _Data, resume: dict | None, rival: Trainer | None
                  ) -> tuple[Trainer, Choice | None]:
    """Build and train one family; save its best model unless it does not beat the family trained
    before it (``rival``), so that the model file always holds the one kept so far."""
    dataset, say = data.dataset, data.say
    record = functools.partial(saved_record, config, facts)  # read when written: the facts are found by then

    def checkpoint(trainer: Trainer) -> None:
        if data.main_rank:
            save_checkpoint(checkpoint_path(config), trainer, record(), data=data.fingerprint())

    trainer = build_trainer(config, dataset.input_shape, dataset.output_size, len(data.train[0]), data.device,
                            dataset.task, make_callbacks(config, record, checkpoint, data.main_rank),
                            data.strategy, config.verbose >= 1 and data.main_rank, train_targets=data.train[1],
                            classes=dataset.classes, record=dataset.preprocessing, facts=facts)
    say(_run_words(config, facts, data))
    if resume is not None:
        _restore(trainer, resume, config.resume)
        say(f"Resuming after epoch {len(trainer.history)}")
    say(trainer.model)
    started = time.perf_counter()
    verdict: list[Choice] = []

    def wins() -> bool:
        if rival is None:
            return True
        if not verdict:
            verdict.append(_verdict(trainer, rival, data))
        return verdict[0].challenger_wins

    def save_best(**extra) -> None:
        if not wins():
            return  # the family trained before stays in the model file
        trainer.model.load_state_dict(trainer.best_state)
        # The optimizer's state is the last epoch's, which may come after the best one: say which.
        save_model_file(config.model_fn, trainer.model, trainer.optimizer, record(),
                        preprocessing=dataset.preprocessing, dataset=dataset.metadata(),
                        history=trainer.history, best_epoch=trainer.best_epoch, opt_epoch=len(trainer.history),
                        train_seconds=time.perf_counter() - started, data=data.fingerprint(), **extra)

    if _train_and_save(trainer, config, (data.train, data.valid), data.strategy, save_best, checkpoint):
        trainer.model.load_state_dict(trainer.best_state)
        saved = wins()
        say(f"{'Saved' if saved else 'Trained'} the best {config.model} (epoch {trainer.best_epoch}, valid_loss="
            f"{trainer.best_valid_loss:.4e}){f' to {config.model_fn}' if saved else ''}; training took "
            f"{time.perf_counter() - started:.1f}s")
    if rival is not None and not verdict:  # the ranks that do not save: the plain comparison, never printed
        verdict.append(Choice(trainer.best_valid_loss < rival.best_valid_loss, 0.0, 0.0))
    return trainer, verdict[0] if verdict else None


def _run_words(config: TrainConfig, facts: RunFacts, data: _Data) -> str:
    """The line before a family trains: the data's shapes, where and in what it computes."""
    where = data.strategy.describe(config.batch_size)
    return (f"{data.dataset.name}: train {tuple(data.train[0].shape)}, valid {tuple(data.valid[0].shape)}, "
            f"test {tuple(data.dataset.test[0].shape)} on {where}, {precision_words(facts)}, seed {config.seed}, "
            f"model {config.model}")


def _verdict(trainer: Trainer, rival: Trainer, data: _Data) -> Choice:
    """Whether ``trainer``'s family beats ``rival``'s: a lower validation loss, with the paired
    difference's standard error from the validation rows (under torchrun, where a forward pass on
    one rank alone could wait on the others, the losses alone)."""
    trainer.model.load_state_dict(trainer.best_state)
    if data.strategy.distributed:
        difference = trainer.best_valid_loss - rival.best_valid_loss
        return Choice(difference < 0, difference, 0.0)
    return choose(trainer.model, rival.model, trainer.crit, data.valid)


def _keep_companions(candidates: list[TrainConfig], kept: tuple[Trainer, TrainConfig, RunFacts], data: _Data
                     ) -> None:
    """--model auto: the history, configuration and checkpoint beside the model file become the
    kept family's (the last one trained wrote them), so that --resume continues the kept one."""
    trainer, config, facts = kept
    if config is not candidates[-1]:
        paths = companion_paths(config.model_fn)
        write_config(paths["config"], saved_record(config, facts))
        write_history(paths["history"], trainer.history)
        if Path(checkpoint_path(config)).exists():
            save_checkpoint(checkpoint_path(config), trainer, saved_record(config, facts), data=data.fingerprint())


# Where the largest class has this many times the rows of the smallest, the run says so.
IMBALANCE_RATIO = 10


def imbalance_note(dataset: Dataset, targets: torch.Tensor, config: TrainConfig) -> list[str]:
    """A warning when the training classes are far from balanced and nothing corrects for it."""
    if dataset.task != CLASSIFICATION or config.class_weight or config.sampler != "shuffle":
        return []
    counts = torch.bincount(targets.cpu(), minlength=dataset.output_size)
    largest, smallest = int(counts.argmax()), int(counts.argmin())
    if counts[smallest] * IMBALANCE_RATIO > counts[largest]:
        return []
    names = dataset.classes
    return [f"warning: imbalanced classes: {names[largest]!r} has {int(counts[largest])} training rows, "
            f"{names[smallest]!r} {int(counts[smallest])}; --class_weight balanced or --sampler balanced "
            "weighs them evenly"]


def _seeded(config: TrainConfig, strategy) -> TrainConfig:
    """A seed for the run (drawn and saved when none was given, so any run can be repeated)."""
    if config.seed is None:
        config = dataclasses.replace(config, seed=strategy.agree(lambda: random.SystemRandom().randrange(2**31)))
    torch.manual_seed(config.seed)  # the same validation split (and initial model) on every rank
    strategy.seed = config.seed
    return config


def _prepare_data(config: TrainConfig, strategy, resume: dict | None,
                  resumed_data: dict | None) -> tuple:
    """The configuration with what the data settles, the dataset prepared with a record fitted on the
    training rows alone, the training and validation tensors, and the (lazy) fingerprint of the data,
    checked across ranks and resumes."""
    if config.pretrained and resume is None:
        pretrained_state(config.model)  # a missing weights file is refused before any picture is decoded
    # The test set is loaded up front too: a data problem should show before training, not after.
    raw = strategy.leader_first(lambda: load_configured_dataset(config))
    # A folder's picture side, a table's batch size and epochs: kept for evaluation and resumes.
    config = dataclasses.replace(config, **raw.kind.settings_found(raw))
    started = started_record(config, raw)
    if raw.valid is not None:  # the source's own validation split (a folder's valid/)
        dataset = raw.prepared(started)
        train_data, valid_data = dataset.train, dataset.valid
    else:
        train_rows, valid_rows = split_indices(len(raw), config.train_ratio)
        # Statistics of the training rows alone, or the record of the model the run starts from.
        dataset = raw.prepared(started or raw.fit_preprocessing(train_rows))
        x, y = dataset.train
        train_data = (take_rows(x, train_rows), y[train_rows])
        valid_data = (take_rows(x, valid_rows), y[valid_rows])
    data_now = functools.cache(lambda: fingerprint(dataset))  # hashing costs a moment: only when needed
    if strategy.distributed:
        strategy.check_same_data(data_now())
    if resume is not None:
        _check_resumed_data(config.resume, resumed_data, data_now)
    world_size = strategy.world_size
    config = _sized_from_rows(config, raw.kind, len(train_data[1]) // world_size)
    if config.sampler == "balanced" and getattr(train_data[0], "from_disk", False):
        raise UserError("--sampler balanced draws rows of classes at random: it needs the rows in memory (this "
                        "cache is read from disk block by block); use --class_weight balanced")
    rows_per_rank = len(train_data[0]) // world_size
    if rows_per_rank < config.batch_size:
        per_rank = f" per process ({world_size} processes)" if world_size > 1 else ""
        raise UserError(f"{dataset.name}: {rows_per_rank} training rows{per_rank} after the validation split, fewer "
                        f"than one batch (--batch_size {config.batch_size}); lower --batch_size")
    return config, dataset, train_data, valid_data, data_now


def started_record(config: TrainConfig, raw: Dataset) -> dict | None:
    """The record of ``--init_from``'s model where this kind of data keeps it (a text model's
    tokenizer: its weights mean those token ids); None for a new fit."""
    if not (config.init_from and raw.kind.keeps_started_record):
        return None
    saved = load_model_file(config.init_from)["preprocessing"]
    if not isinstance(saved, dict) or saved.get("kind") != raw.kind.kind:
        return None  # refused by --init_from's own checks, in its words
    return {**saved, "started_from": config.init_from}


def _train_and_save(trainer: Trainer, config: TrainConfig, data: tuple, strategy,
                    save_best: Callable, checkpoint: Callable) -> bool:
    """Train, then save the best model; False on the ranks that do not save. A stopped run keeps
    what it achieved and raises on."""
    # The run's one signal handler, around training and saving: inside the loop a signal stops the
    # trainer after the batch; outside it (while saving) it exits at once, cleanly.
    signals = next((c for c in trainer.callbacks if isinstance(c, StopOnSignals)), contextlib.nullcontext())
    with signals:
        try:
            trainer.train(*data, config.n_epochs, config.batch_size)
        except TrainingStopped as stop:
            _stop_together(stop, strategy, functools.partial(_save_after_stop, stop, trainer, config, save_best,
                                                             checkpoint, strategy.world_size))
            raise
        except SaveFailed as failed:  # a checkpoint could not be written: keep the best model, then stop
            _save_after_failed_checkpoint(failed, trainer, config, save_best)
        if not strategy.is_main:
            return False
        save_best()
    return True


def _sized_from_rows(config: TrainConfig, kind, rows: int) -> TrainConfig:
    """Batch size and epochs a run left to its kind of data (a table's), from its training rows (per
    process)."""
    if config.batch_size is not None and config.n_epochs is not None:
        return config
    batch, epochs = kind.schedule(rows, config.batch_size)
    return dataclasses.replace(config, batch_size=batch, n_epochs=config.n_epochs or epochs)


def _stop_together(stop: TrainingStopped, strategy, save: Callable[[], None]) -> None:
    """A run that stopped: rank 0 saves what it has while the others (under torchrun) wait for it.

    As soon as one process exits with an error, torchrun's agent stops the others with SIGTERM (and
    kills them after its own timeout, 30 s by default): rank 0 ignores it while saving. After an
    agreed stop (Ctrl-C, divergence) the others also wait until the files are written; after a lost
    peer there is no one left to wait with.
    """
    if not strategy.distributed:
        save()
        return
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if strategy.is_main:
        save()
    elif isinstance(stop, PeerLost):
        print(f"mnist-train: {stop}", file=sys.stderr)
    if not isinstance(stop, PeerLost):
        with contextlib.suppress(UserError):  # a peer lost while saving: nothing more to do
            strategy.barrier()


def _on_processes(config: TrainConfig, facts: RunFacts, strategy, resumed: bool) -> TrainConfig:
    """Record how many processes train; a resumed run must have as many as it began with (each
    process's steps per epoch, and so the global batch and the schedule, depend on it), or a batch
    size per process that keeps its global batch."""
    now, began = strategy.world_size, facts.world_size
    facts.world_size = now
    if not resumed:
        return config
    batch_size = regrouped_batch_size(config, began, now)
    if batch_size is None:
        launch = (f"torchrun --nproc_per_node {began} (or as many processes over several machines)"
                  if began > 1 else "mnist-train, without torchrun")
        raise UserError(f"--resume {config.resume}: the run was trained by {began} process(es), this is "
                        f"{now}; resume it with {launch}")
    if now != began and strategy.is_main:
        print(f"mnist-train: note: resuming on {now} process(es) a run begun on {began}: --batch_size "
              f"{batch_size} per process keeps its global batch of {began * config.batch_size}",
              file=sys.stderr)
    return dataclasses.replace(config, batch_size=batch_size)


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


def make_callbacks(config: TrainConfig, record: Callable[[], dict], checkpoint: Callable[[Trainer], None],
                   main_rank: bool = True) -> list:
    """What the command does around the loop besides what the configuration asks of every trainer
    (``callbacks.from_config``): the run's logs, checkpoints and signals. Only the main process of a
    distributed run writes; ``record()`` is what its configuration files hold."""
    callbacks = []
    if main_rank:  # the epoch's row is written before a checkpoint that might fail
        callbacks.append(RunLog(config.model_fn, record))
        if config.tensorboard:
            callbacks.append(TensorBoardLog(config.tensorboard, record))
    if config.checkpoint_every:
        callbacks.append(EveryEpochs(config.checkpoint_every, checkpoint))
    return [*callbacks, StopOnSignals(announce=main_rank)]


def test_metrics(trainer: Trainer, dataset: Dataset, config: TrainConfig) -> dict:
    """The test set's metrics; for regression every one in the target's own units."""
    # In float32 whatever the training precision: what every consumer of the model file will measure.
    test = evaluate(trainer.model, trainer.crit, dataset.test, config.batch_size, task=dataset.task)
    if dataset.task == REGRESSION:
        # Targets were standardised for training; undo it for what people read.
        scale = target_scale(dataset.preprocessing)
        test = {"mse": test["mse"] * scale**2, "rmse": test["mse"] ** 0.5 * scale, "r2": test["r2"]}
    return test


def precision_words(facts: RunFacts) -> str:
    """E.g. "fp32 (auto: this CPU (AVX2) has no bf16 kernels)": what the run computes in, and why."""
    short = "bf16" if facts.precision == BFLOAT16 else "fp32"
    return f"{short} ({facts.precision_reason})" if facts.precision_reason else short


def checkpoint_path(config: TrainConfig) -> str:
    return config.checkpoint_fn or str(companion_paths(config.model_fn)["checkpoint"])


def _save_after_stop(stop: TrainingStopped, trainer: Trainer, config: TrainConfig, save_best, checkpoint,
                     world_size: int) -> None:
    """Keep what the stopped run achieved: its best model and, when interrupted, a checkpoint."""
    print(f"mnist-train: {stop}", file=sys.stderr)
    if trainer.snapshot is None:
        print("mnist-train: no epoch was completed; nothing was saved", file=sys.stderr)
        return
    save_best(stopped=str(stop))
    where = f"the best model so far (epoch {trainer.best_epoch}) is in {config.model_fn}"
    if isinstance(stop, TrainingInterrupted | PeerLost):
        checkpoint(trainer)
        command = "torchrun ... train.py" if world_size > 1 else "mnist-train"

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
    dataset = load_dataset(config.dataset, config.data_dir, **source_options(config))
    if config.task and config.task != dataset.task:
        raise UserError(f"--task {config.task}: the dataset {config.dataset} is a {dataset.task} dataset")
    return dataset


def describe_test(test: dict, dataset: Dataset) -> str:
    n = len(dataset.test[0])
    if dataset.task == CLASSIFICATION:
        return f"Test accuracy: {test['accuracy']:.2%} ({n} {dataset.kind.unit})"
    return f"Test RMSE: {test['rmse']:.4g}  R^2: {test['r2']:.4f} ({n} rows)"
