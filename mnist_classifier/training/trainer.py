"""The training loop: any model, any optimizer, any loss; classification or regression.

Data that fits in memory stays as tensors on the model's device and is batched by indexing,
so no per-sample Python work happens in the loop. Losses are summed on the device and read
back once per epoch: a ``.item()`` per batch would stall the device every step.
"""

from __future__ import annotations

import copy
import signal
import time
from collections.abc import Callable, Sequence

import torch
from torch import nn

from ..data.dataset import model_input
from ..errors import UserError
from .callbacks import Callback, EpochPrinter, ProgressBar
from .distributed import DataParallel

Data = tuple[torch.Tensor, torch.Tensor]

# In a distributed run, how often the ranks check together whether one was asked to stop.
STOP_CHECK_STEPS = 20
SIGNAL_NUMBERS = {s.name: s.value for s in signal.Signals}
# Evaluation keeps no activations for backward, so it can use much larger batches.
MIN_EVAL_BATCH_SIZE = 1024


def is_classification(y: torch.Tensor) -> bool:
    """Integer targets are class indices; anything else is a regression target."""
    return not torch.is_floating_point(y)


@torch.inference_mode()
def evaluate(
    model: nn.Module, crit: Callable, data: Data, batch_size: int = MIN_EVAL_BATCH_SIZE, amp: bool = False,
    reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> dict:
    """Mean loss (and accuracy for class targets) of ``model`` on ``data``, in eval mode.

    ``reduce`` sums the totals over the ranks of a distributed run, each of which holds a shard of
    the data: the metrics are then those of all the shards together, the same on every rank.
    """
    model.eval()
    device = device_of(model)
    x, y = (t.to(device) for t in data)
    batch_size = max(batch_size, MIN_EVAL_BATCH_SIZE)
    classification = is_classification(y)
    total_loss = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    squared_error = torch.zeros((), device=device)
    for x_i, y_i in zip(x.split(batch_size), y.split(batch_size), strict=True):
        x_i = model_input(x_i, device)
        with autocast(device, amp):
            y_hat = model(x_i)
        # Losses and log-probabilities in float32 whatever the precision inside: the best epoch is
        # chosen on these numbers, and bfloat16 keeps only 3 significant digits.
        y_hat = y_hat.float()
        total_loss += crit(y_hat, y_i) * len(x_i)
        if classification:
            correct += (y_hat.argmax(dim=-1) == y_i).sum()
        else:
            squared_error += (y_hat - y_i).pow(2).sum()
    # One vector of sums in float64, read back (and, distributed, all-reduced) at once.
    y64 = y.double()
    totals = torch.stack([total_loss.double(), correct.double(), squared_error.double(),
                          torch.tensor(float(len(x)), dtype=torch.float64, device=device),
                          torch.tensor(float(y.numel()), dtype=torch.float64, device=device),
                          y64.sum() if not classification else y64.new_zeros(()),
                          y64.pow(2).sum() if not classification else y64.new_zeros(())])
    if reduce is not None:
        totals = reduce(totals)
    loss, n_correct, sse, rows, values, y_sum, y_squares = totals.tolist()
    metrics = {"loss": loss / max(rows, 1)}
    if classification:
        metrics["accuracy"] = n_correct / max(rows, 1)
    else:
        # R^2 = 1 - SSE / SST: the share of the targets' variance the model explains.
        metrics["mse"] = sse / max(values, 1)
        metrics["r2"] = 1 - sse / max(y_squares - y_sum * y_sum / max(values, 1), 1e-12)
    return metrics


def autocast(device: torch.device, enabled: bool):
    """bfloat16 mixed precision where ``enabled`` (``precision.py`` decides where it pays)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


def steps_per_epoch(n_train: int, batch_size: int, compile: bool = False) -> int:
    """Optimizer steps one epoch takes: a 1-row last batch is skipped (BatchNorm cannot train on
    one sample), and with ``compile`` every partial last batch (a new shape would recompile)."""
    full, rest = divmod(n_train, batch_size)
    return full + (1 if rest >= 2 and not compile else 0)


class TrainingStopped(Exception):
    """Training ended early; the trainer still holds its best weights and last epoch's snapshot."""


class TrainingInterrupted(TrainingStopped):
    def __init__(self, reason: str, epoch: int):
        super().__init__(f"{reason} during epoch {epoch}")
        self.reason, self.epoch = reason, epoch


class PeerLost(TrainingStopped):
    """Another rank of a distributed run died or stopped answering (``distributed.py``)."""


class TrainingDiverged(TrainingStopped):
    def __init__(self, epoch: int, batch: int):
        super().__init__(f"the loss became NaN or infinite in epoch {epoch}, batch {batch}; "
                         "lower --lr (or check the data for extreme values)")
        self.epoch, self.batch = epoch, batch


class Trainer:
    """Runs epochs of training and validation and keeps the weights with the lowest validation loss."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        crit: Callable,
        scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
        compile: bool = False,
        amp: bool = False,
        augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
        callbacks: Sequence[Callback] | None = None,
        parallel: DataParallel | None = None,
        verbose: bool = True,
        balanced_sampling: bool = False,
    ):
        """``scheduler``, if given, is stepped after every optimizer step (not every epoch).
        ``compile`` runs the training step through ``torch.compile``; validation stays eager (a
        second, eval-mode graph would cost more to compile than it saves). ``amp`` computes in
        bfloat16 where autocast allows it; weights, gradients, optimizer state, losses and
        log-probabilities stay float32. ``augment`` transforms each training batch (never
        validation). ``callbacks`` see the run's events (``callbacks.Callback``), after the
        defaults: with ``verbose``, a progress bar and a line per epoch, as the seed prints.
        ``parallel`` (``distributed.data_parallel``) trains this rank's share of a torchrun job through
        ``DistributedDataParallel``; ``model`` keeps its own parameters, so saving it is unchanged.
        ``balanced_sampling``: each epoch's rows drawn with replacement, each class as often (``--sampler``).
        """
        self.model, self.optimizer, self.crit, self.scheduler = model, optimizer, crit, scheduler
        self.compile, self.amp, self.augment, self.balanced_sampling = compile, amp, augment, balanced_sampling
        self.callbacks = [*([ProgressBar(), EpochPrinter()] if verbose else []), *(callbacks or ())]
        # Static shapes compile once; a smaller last batch would compile a second graph, so it is
        # dropped instead (the order changes every epoch, so no sample is left out for good).
        # On a GPU, CUDA graphs replay the step's many small kernels with one launch ("reduce-overhead").
        mode = "reduce-overhead" if device_of(model).type == "cuda" else None
        self.parallel = parallel
        forward = parallel.wrap(model) if parallel is not None else model
        self._train_forward = torch.compile(forward, dynamic=False, mode=mode) if compile else forward
        self.history: list[dict] = []
        self.best_valid_loss = float("inf")
        self.best_epoch = 0
        self.best_state: dict[str, torch.Tensor] | None = None
        # Everything needed to continue exactly after the last completed epoch (see state_dict).
        self.snapshot: dict | None = None
        self.n_epochs = 0
        self.should_stop = False  # set by a callback: end the run after this epoch
        self._progress: tuple[torch.Tensor, int] = (torch.zeros(()), 0)  # this epoch's loss sum, rows seen
        self._stop_reason: str | None = None
        self._epoch_ending = False

    @property
    def stop_reason(self) -> str | None:
        return self._stop_reason

    def request_stop(self, reason: str) -> None:
        """Stop at the end of the current batch (safe to call from a signal handler)."""
        self._stop_reason = reason

    def train(self, train_data: Data, valid_data: Data, n_epochs=20, batch_size: int = 256) -> list[dict]:
        """Train up to epoch ``n_epochs`` in batches of ``batch_size``.

        ``n_epochs`` may also be a config object with ``n_epochs`` and ``batch_size`` (the seed's
        ``trainer.train(train, valid, config)``). Continues after the epochs already in ``history``
        (after ``load_state_dict``). Returns the history, one dict per epoch; the model ends with
        its best-validation weights. Raises ``TrainingInterrupted`` after ``request_stop`` and
        ``TrainingDiverged`` on a NaN loss.
        """
        if hasattr(n_epochs, "n_epochs"):
            n_epochs, batch_size = n_epochs.n_epochs, getattr(n_epochs, "batch_size", batch_size)
        self.n_epochs, self.should_stop = n_epochs, False
        device = device_of(self.model)
        train_data = tuple(t.to(device) for t in train_data)
        valid_data = tuple(t.to(device) for t in valid_data)
        if self.parallel is not None:
            valid_data = self.parallel.validation_shard(valid_data)
        if self.best_state is None:
            self.best_state = _copy_state(self.model)
        if self.balanced_sampling and (hasattr(train_data[0], "epoch_order") or not is_classification(train_data[1])):
            raise UserError("--sampler balanced draws rows of classes at random: it needs class targets and rows in "
                            "memory (this cache is read from disk block by block); use --class_weight balanced")
        self._emit("on_train_start")
        try:
            self._run_epochs(n_epochs, train_data, valid_data, batch_size)
        except BaseException as e:
            self._emit("on_exception", e)
            raise
        finally:
            self._emit("on_train_end")
        self.model.load_state_dict(self.best_state)
        return self.history

    def _run_epochs(self, n_epochs: int, train_data: Data, valid_data: Data, batch_size: int) -> None:
        try:
            for epoch in range(len(self.history) + 1, n_epochs + 1):
                self._run_epoch(epoch, train_data, valid_data, batch_size)
                if self.should_stop:
                    break
        except RuntimeError as e:  # a collective failed because another rank is gone: say so
            news = self.parallel.peer_failure(e) if self.parallel is not None else None
            if news is None:
                raise
            raise PeerLost(news) from e

    def _run_epoch(self, epoch: int, train_data: Data, valid_data: Data, batch_size: int) -> None:
        started = time.perf_counter()
        train_loss = self._train_epoch(train_data, batch_size, epoch)
        valid_started = time.perf_counter()
        reduce = None
        if self.parallel is not None:
            self.parallel.sync_buffers(self.model)  # every rank validates (and keeps) rank 0's model
            reduce = self.parallel.sum
        valid = evaluate(self.model, self.crit, valid_data, batch_size, self.amp, reduce)
        record = {"epoch": epoch, "train_loss": train_loss, "valid_loss": valid["loss"]}
        if "accuracy" in valid:
            record["valid_accuracy"] = valid["accuracy"]
        record["lr"] = self.optimizer.param_groups[0]["lr"]  # the rate the epoch ended with
        now = time.perf_counter()
        record["seconds"], record["valid_seconds"] = now - started, now - valid_started
        self.history.append(record)
        if valid["loss"] < self.best_valid_loss:
            self.best_valid_loss, self.best_epoch = valid["loss"], epoch
            self.best_state = _copy_state(self.model)
        self.snapshot = self.state_dict()
        self._epoch_ending = True
        try:
            self._emit("on_epoch_end", record)
        finally:
            self._epoch_ending = False
        self.snapshot["callbacks"] = self.callback_states()  # as the epoch's callbacks left them

    def running_loss(self) -> float:
        """This epoch's mean training loss so far. It syncs the device: call it now and then."""
        total, seen = self._progress
        return total.item() / max(seen, 1)

    def _emit(self, event: str, *args) -> None:
        for callback in self.callbacks:
            getattr(callback, event)(self, *args)

    def state_dict(self) -> dict:
        """A copy of everything that decides what happens next: weights, optimizer, schedule,
        history, best-so-far, random number generators. Loading it continues bit for bit."""
        return {
            "model": _copy_state(self.model),
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "history": copy.deepcopy(self.history),
            "best_state": self.best_state,  # replaced, never changed in place: no copy needed
            "best_valid_loss": self.best_valid_loss,
            "best_epoch": self.best_epoch,
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "callbacks": self.callback_states(),
        }

    def callback_states(self) -> dict:
        """Each stateful callback's ``state_dict``, by class name."""
        return {type(c).__name__: c.state_dict() for c in self.callbacks if c.state_dict()}

    def checkpoint_state(self) -> dict:
        """What a checkpoint holds: the last completed epoch's snapshot. Written from inside that
        epoch's ``on_epoch_end`` (every N epochs), with the callbacks' states as they are now, after
        the epoch; written later (after an interruption), as the epoch left them."""
        if self._epoch_ending:
            return {**self.snapshot, "callbacks": self.callback_states()}
        return self.snapshot

    def load_state_dict(self, state: dict) -> None:
        """Continue from a ``state_dict()``. A malformed one raises (``ValueError`` for the history and
        best-so-far, checked first; whatever torch raises for the rest): do not train on after that."""
        history, best = state.get("history"), state.get("best_state")
        if not (isinstance(history, list) and all(isinstance(h, dict) for h in history) and isinstance(best, dict)
                and isinstance(state.get("best_epoch"), int) and isinstance(state.get("best_valid_loss"), float)):
            raise ValueError("its history, best weights or best epoch are missing or malformed")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.history = copy.deepcopy(state["history"])
        self.best_state = state["best_state"]
        self.best_valid_loss, self.best_epoch = state["best_valid_loss"], state["best_epoch"]
        saved = state.get("callbacks") or {}  # none in checkpoints from before callbacks kept state
        for callback in self.callbacks:
            if type(callback).__name__ in saved:
                callback.load_state_dict(saved[type(callback).__name__])
        torch.set_rng_state(state["rng_cpu"])
        if state["rng_cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng_cuda"])
        self.snapshot = state

    def _train_epoch(self, data: Data, batch_size: int, epoch: int) -> float:
        self.model.train()
        x, y = data
        order = self._epoch_order(x, y, epoch)
        device = y.device
        total_loss = torch.zeros((), device=device)
        # The first batch with a non-finite loss, tracked on the device: checking each loss on
        # the host would stall a GPU every step.
        first_bad = torch.full((), -1, dtype=torch.long, device=device)
        seen = 0
        batches = order.split(batch_size)
        self._emit("on_epoch_start", epoch, len(batches))
        for step, batch in enumerate(batches, start=1):
            self._check_stop(epoch, step)
            if len(batch) < 2 or (self.compile and len(batch) < batch_size):
                continue  # see steps_per_epoch; the next epoch's order differs.
            x_batch = model_input(x[batch], device)
            if self.augment is not None:
                x_batch = self.augment(x_batch)
            with autocast(device, self.amp):
                y_hat = self._train_forward(x_batch)
            loss = self.crit(y_hat.float(), y[batch])
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self._emit("on_before_optimizer_step")
            self.optimizer.step()
            if self.scheduler is not None:
                self.scheduler.step()
            total_loss += loss.detach() * len(batch)
            first_bad = torch.where((first_bad < 0) & ~torch.isfinite(loss.detach()), step, first_bad)
            seen += len(batch)
            self._progress = (total_loss, seen)
            self._emit("on_batch_end", step)
        if self.parallel is not None:  # the global figures, the same on every rank
            # The earliest bad batch of any rank: -1 (none) must not win the minimum.
            never = torch.iinfo(first_bad.dtype).max
            first_bad = -self.parallel.max(-torch.where(first_bad < 0, never, first_bad))
            first_bad = torch.where(first_bad == never, -1, first_bad)
            totals = self.parallel.sum(torch.stack([total_loss.double(), total_loss.new_tensor(seen).double()]))
            total_loss, seen = totals[0], int(totals[1].item())
        if first_bad.item() >= 0:
            raise TrainingDiverged(epoch, first_bad.item())
        return total_loss.item() / max(seen, 1)

    def _epoch_order(self, x, y: torch.Tensor, epoch: int) -> torch.Tensor:
        """A fresh order every epoch; drawn on the data's device so indexing needs no copy. A cache read
        from disk has its own order, block by block (image_cache.FileRows)."""
        if self.balanced_sampling:
            return balanced_order(y)
        if self.parallel is None:
            return x.epoch_order() if hasattr(x, "epoch_order") else torch.randperm(len(x), device=x.device)
        self.parallel.seed_epoch(epoch)  # this rank's share of the shuffle all ranks draw alike
        return self.parallel.epoch_shard(len(x), epoch, x.device, getattr(x, "epoch_order", None))

    def _check_stop(self, epoch: int, step: int) -> None:
        """Raise ``TrainingInterrupted`` once a stop was requested; in a distributed run, on every rank
        at the same batch (at each epoch's first and every ``STOP_CHECK_STEPS``-th): a rank that left
        alone would leave the others waiting in their next collective."""
        if self.parallel is None:
            if self._stop_reason is not None:
                raise TrainingInterrupted(self._stop_reason, epoch)
            return
        if step != 1 and step % STOP_CHECK_STEPS:
            return
        asked = 0 if self._stop_reason is None else SIGNAL_NUMBERS.get(self._stop_reason, 1)
        asked = int(self.parallel.max(torch.tensor(asked, device=self.parallel.device)).item())
        if asked:
            reason = self._stop_reason or (signal.Signals(asked).name if asked > 1 else "a stop on another rank")
            raise TrainingInterrupted(reason, epoch)


def balanced_order(y: torch.Tensor) -> torch.Tensor:
    """As many row indices as rows, drawn with replacement so that each class present is as likely."""
    counts = torch.bincount(y)
    weights = 1.0 / counts[y].double()
    return torch.multinomial(weights, len(y), replacement=True)


def device_of(model: nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def _copy_state(model: nn.Module) -> dict[str, torch.Tensor]:
    # state_dict() returns views of the live tensors: clone them, or the "best" would keep moving.
    return {name: value.detach().clone() for name, value in model.state_dict().items()}
