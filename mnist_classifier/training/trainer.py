"""The seed's training loop: any model, any optimizer, any loss; classes or a number.

Data that fits in memory stays as tensors on the model's device and is batched by indexing, so no
per-sample Python work happens in the loop. Losses are summed on the device and read back once
per epoch: a ``.item()`` per batch would stall the device every step. Which rows this process
trains on, and how its sums join those of other processes, is the ``strategy``'s part: one process
(``strategy.SingleProcess``) or a torchrun job (``distributed.DataParallel``).
"""

from __future__ import annotations

import copy
import time

import torch

from ..data.dataset import model_input
from .callbacks import printers
from .metrics import autocast, evaluate
from .strategy import SingleProcess


class Trainer:
    """Runs epochs of training and validation and keeps the weights with the lowest validation loss."""

    def __init__(self, model, optimizer, crit, scheduler=None, *, task: str | None = None, compile: bool = False,
                 amp: bool = False, augment=None, callbacks=(), strategy=None, verbose: bool = True, sampler=None):
        """``model``, ``optimizer`` and ``crit`` (the loss) as in the seed. ``scheduler``, if given, is
        stepped after every optimizer step. ``task``: "classification" adds the validation accuracy to
        each epoch's record; "regression" or None records the losses alone. ``compile`` runs the
        training step through ``torch.compile`` (validation stays eager: a second graph would cost
        more to compile than it saves). ``amp`` computes in bfloat16 where autocast allows it;
        weights, gradients, optimizer state, losses and log-probabilities stay float32. ``augment``
        transforms each training batch. ``callbacks`` see the run's events (``callbacks.Callback``),
        after a progress bar and a line per epoch when ``verbose``. ``strategy``: one process by
        default. ``sampler(y)``, when given, draws each epoch's row order instead of a shuffle.
        """
        self.model, self.optimizer, self.crit, self.scheduler = model, optimizer, crit, scheduler
        self.task, self.compile, self.amp, self.augment, self.sampler = task, compile, amp, augment, sampler
        self.strategy = strategy or SingleProcess()
        self.callbacks = [*(printers() if verbose else []), *(callbacks or ())]
        self.device = next(model.parameters()).device
        # On a GPU, CUDA graphs replay the step's many small kernels with one launch ("reduce-overhead").
        forward = self.strategy.wrap(model)
        mode = "reduce-overhead" if self.device.type == "cuda" else None
        self._forward = torch.compile(forward, dynamic=False, mode=mode) if compile else forward
        self.history: list[dict] = []
        self.best_valid_loss, self.best_epoch, self.best_state = float("inf"), 0, None
        self.snapshot: dict | None = None  # the last completed epoch, all a resume needs (state_dict)
        self.n_epochs, self.should_stop = 0, False  # a callback sets should_stop: the run ends after the epoch
        self._progress = (torch.zeros(()), 0)  # this epoch's loss sum and rows so far
        self.stop_reason: str | None = None
        self._epoch_ending = False

    def train(self, train_data, valid_data, n_epochs=20, batch_size: int = 256) -> list[dict]:
        """Train up to epoch ``n_epochs`` in batches of ``batch_size``; ``n_epochs`` may also be a config
        with ``n_epochs`` and ``batch_size`` (the seed's ``trainer.train(train, valid, config)``).

        Continues after the epochs already in ``history`` (after ``load_state_dict``). Returns the
        history, one dict per epoch; the model ends with its best-validation weights. Raises
        ``TrainingInterrupted`` after ``request_stop`` and ``TrainingDiverged`` on a NaN loss.
        """
        if hasattr(n_epochs, "n_epochs"):
            n_epochs, batch_size = n_epochs.n_epochs, getattr(n_epochs, "batch_size", batch_size)
        self.n_epochs, self.should_stop = n_epochs, False
        train_data = tuple(t.to(self.device) for t in train_data)
        valid_data = self.strategy.validation_shard(tuple(t.to(self.device) for t in valid_data))
        self.best_state = self.best_state or _copy_state(self.model)
        self._emit("on_train_start")
        try:
            with self.strategy.collectives():  # a lost peer becomes PeerLost (distributed.py)
                for epoch in range(len(self.history) + 1, n_epochs + 1):
                    self._run_epoch(epoch, train_data, valid_data, batch_size)
                    if self.should_stop:
                        break
        except BaseException as e:
            self._emit("on_exception", e)
            raise
        finally:
            self._emit("on_train_end")
        self.model.load_state_dict(self.best_state)
        return self.history

    def _run_epoch(self, epoch: int, train_data, valid_data, batch_size: int) -> None:
        started = time.perf_counter()
        train_loss = self._train_epoch(train_data, batch_size, epoch)
        valid_started = time.perf_counter()
        self.strategy.before_validation(self.model)
        valid = evaluate(self.model, self.crit, valid_data, batch_size, self.amp, self.strategy.sum, self.task)
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

    def _train_epoch(self, data, batch_size: int, epoch: int) -> float:
        """One pass over this process's rows in a fresh order: forward, loss, backward, update."""
        self.model.train()
        x, y = data
        order = self.sampler(y) if self.sampler is not None else self.strategy.epoch_order(x, epoch, batch_size)
        batches, n_steps = order.split(batch_size), steps_per_epoch(len(order), batch_size, self.compile)
        total_loss, seen = torch.zeros((), device=self.device), 0
        # The first batch with a non-finite loss, kept on the device: a check on the host would stall
        # a GPU every step.
        first_bad = torch.full((), NO_BATCH, device=self.device)
        self._emit("on_epoch_start", epoch, len(batches))
        for step, batch in enumerate(batches, start=1):
            reason = self.strategy.agreed_stop(self.stop_reason, step)
            if reason is not None:
                raise TrainingInterrupted(reason, epoch)
            if step > n_steps:
                break  # a last batch too small to train on (steps_per_epoch)
            x_batch = model_input(x[batch], self.device)
            if self.augment is not None:
                x_batch = self.augment(x_batch)
            with autocast(self.device, self.amp):
                y_hat = self._forward(x_batch)
            loss = self.crit(y_hat.float(), y[batch])
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self._emit("on_before_optimizer_step")
            self.optimizer.step()
            if self.scheduler is not None:
                self.scheduler.step()
            total_loss += loss.detach() * len(batch)
            first_bad = torch.where(torch.isfinite(loss.detach()), first_bad, first_bad.clamp(max=step))
            seen += len(batch)
            self._progress = (total_loss, seen)
            self._emit("on_batch_end", step)
        first_bad = int(self.strategy.min(first_bad).item())  # the earliest of every process
        if first_bad != NO_BATCH:
            raise TrainingDiverged(epoch, first_bad)
        totals = self.strategy.sum(torch.stack([total_loss.double(), total_loss.new_tensor(seen).double()]))
        return (totals[0] / totals[1].clamp(min=1)).item()

    def running_loss(self) -> float:
        """This epoch's mean training loss so far. It syncs the device: call it now and then."""
        total, seen = self._progress
        return total.item() / max(seen, 1)

    def request_stop(self, reason: str) -> None:
        """Stop at the end of the current batch (safe to call from a signal handler)."""
        self.stop_reason = reason

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
        self.history, self.best_state = copy.deepcopy(history), best
        self.best_valid_loss, self.best_epoch = state["best_valid_loss"], state["best_epoch"]
        saved = state.get("callbacks") or {}  # none in checkpoints from before callbacks kept state
        for callback in self.callbacks:
            if type(callback).__name__ in saved:
                callback.load_state_dict(saved[type(callback).__name__])
        torch.set_rng_state(state["rng_cpu"])
        if state["rng_cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng_cuda"])
        self.snapshot = state


NO_BATCH = torch.iinfo(torch.long).max  # "no batch diverged", above every step number


def steps_per_epoch(n_train: int, batch_size: int, compile: bool = False) -> int:
    """Optimizer steps one epoch takes: a 1-row last batch is skipped (BatchNorm cannot train on
    one sample), and with ``compile`` every partial last batch (a new shape would compile a second
    graph). The order changes every epoch, so no row is left out for good."""
    full, rest = divmod(n_train, batch_size)
    return full + (1 if rest >= 2 and not compile else 0)


def balanced_order(y: torch.Tensor) -> torch.Tensor:
    """A sampler: as many row indices as rows, drawn with replacement so that each class present is
    as likely."""
    counts = torch.bincount(y)
    weights = 1.0 / counts[y].double()
    return torch.multinomial(weights, len(y), replacement=True)


def _copy_state(model) -> dict[str, torch.Tensor]:
    # state_dict() returns views of the live tensors: clone them, or the "best" would keep moving.
    return {name: value.detach().clone() for name, value in model.state_dict().items()}


class TrainingStopped(Exception):
    """Training ended early; the trainer still holds its best weights and last epoch's snapshot."""


class TrainingInterrupted(TrainingStopped):
    def __init__(self, reason: str, epoch: int):
        super().__init__(f"{reason} during epoch {epoch}")
        self.reason, self.epoch = reason, epoch


class TrainingDiverged(TrainingStopped):
    def __init__(self, epoch: int, batch: int):
        super().__init__(f"the loss became NaN or infinite in epoch {epoch}, batch {batch}; lower the learning "
                         "rate (or check the data for extreme values)")
        self.epoch, self.batch = epoch, batch
