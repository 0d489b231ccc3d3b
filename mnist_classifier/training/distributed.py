"""Data-parallel training under torchrun: one process per device, ``DistributedDataParallel`` between them.

torchrun starts the processes and gives each ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and a meeting
point (``MASTER_ADDR``/``MASTER_PORT``). Without them ``cli/train.py`` trains with a
``strategy.SingleProcess``, this module is never called, and training is one plain process.


How the ranks stay one run:
- before anything else they compare their settled configurations (``check_same_settings``): ranks
  started by hand with other flags are refused in one line, not left to hang or fail later;
- every rank holds the whole (in-memory) training set; each epoch, all of them draw the same shuffle
  from (seed, epoch) and each takes every ``world_size``-th row of it, so the shards are disjoint,
  equal in size (a few leftover rows, fewer than ``world_size``, sit out that epoch), and together
  the global batch k is exactly the rows a single process would take as its batch k;
- DDP averages the gradients, so every rank applies the same update; BatchNorm's running statistics
  are copied from rank 0 before each validation, so every rank holds rank 0's model;
- validation is sharded too and its sums all-reduced: every rank sees the same validation loss and
  keeps the same best epoch;
- dropout and augmentation draw from a per-rank stream, reseeded from (seed, epoch, rank), so that a
  resumed run continues as it began without saving each rank's generator.

A rank that dies breaks the others' next collective: gloo raises at once when the peer's connection
closes, and after ``--dist_timeout`` seconds when a peer hangs. ``collectives()`` turns that into
``PeerLost``, and the command line keeps what the last completed epoch achieved. (NCCL notices a lost
peer by its watchdog, after the timeout, and may abort the process instead of raising: verified
here only with gloo.)
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import signal
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn

from ..data.dataset import take_rows
from ..errors import AgreedError, UserError, first_line
from ..kinds import source_path, with_path
from .strategy import TORCHRUN_VARIABLES
from .trainer import TrainingStopped

DEFAULT_TIMEOUT_S = 120.0
# How long the other ranks wait for each machine's first rank to prepare the data (a first download).
DATA_TIMEOUT_S = 3600
# What the messages of a collective that lost its peer contain (gloo raises a plain RuntimeError).
PEER_FAILURE_MARKERS = ("gloo", "NCCL", "nccl", "ProcessGroup", "Connection reset", "Connection closed",
                        "Broken pipe", "Timed out", "timed out")
# Settings each process may hold its own way; every other one must be the same on every rank. Rank 0
# alone writes the outputs and prints; each machine keeps its inputs where it likes (the rows
# themselves are compared by ``check_same_data``; a resumed checkpoint's configuration is among the
# compared settings); each process takes its local rank's GPU whatever ``--gpu_id`` says, and waits
# for a silent peer as long as it was told.
# How often (in batches) the ranks check together whether one was asked to stop.
STOP_CHECK_STEPS = 20
SIGNAL_NUMBERS = {s.name: s.value for s in signal.Signals}
PER_PROCESS_SETTINGS = frozenset({"model_fn", "checkpoint_fn", "tensorboard", "verbose", "resume", "data_dir",
                                  "test_csv", "init_from", "gpu_id", "dist_timeout"})


class PeerLost(TrainingStopped):
    """Another rank of a distributed run died or stopped answering."""


@dataclass
class DataParallel:
    """This process's place in a torchrun job: the strategy (``strategy.SingleProcess``'s methods)
    whose collectives keep the ranks one run."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    seed: int = 0  # the run's seed, the same on every rank (``agree``); set before training
    distributed = True  # a torchrun job, even of one process (not a dataclass field: no annotation)

    @property
    def is_main(self) -> bool:
        """Rank 0 alone prints, shows progress and writes files."""
        return self.rank == 0

    def shard_size(self, n_rows: int) -> int:
        return n_rows // self.world_size

    def epoch_shard(self, n_rows: int, epoch: int, device: torch.device, shuffle=None) -> torch.Tensor:
        """This rank's row indices for ``epoch``: its share of one shuffle every rank draws alike.
        ``shuffle(generator)``, when given, draws that order (a cache read from disk, block by block)."""
        generator = self._generator(device, self.seed, epoch)
        order = shuffle(generator) if shuffle else torch.randperm(n_rows, generator=generator, device=device)
        used = n_rows - n_rows % self.world_size
        return order[self.rank:used:self.world_size]

    def epoch_order(self, x, epoch: int, batch_size: int | None = None) -> torch.Tensor:
        """This rank's rows of ``epoch``, with dropout and augmentation reseeded for it. Rows with their
        own order (``SingleProcess.epoch_order``) draw it in global batches: every rank's share of one is
        alike."""
        self.seed_epoch(epoch)
        own = getattr(x, "epoch_order", None)
        shuffle = functools.partial(own, batch_size=batch_size and batch_size * self.world_size) if own else None
        return self.epoch_shard(len(x), epoch, x.device, shuffle)

    def before_validation(self, model: nn.Module) -> None:
        self.sync_buffers(model)  # every rank validates (and keeps) rank 0's model

    def agreed_stop(self, reason: str | None, step: int) -> str | None:
        """A stop asked of any rank, seen by every rank at the same batch (each epoch's first and every
        ``STOP_CHECK_STEPS``-th): a rank that left alone would leave the others waiting."""
        if step != 1 and step % STOP_CHECK_STEPS:
            return None
        asked = 0 if reason is None else SIGNAL_NUMBERS.get(reason, 1)
        asked = int(self.max(torch.tensor(asked, device=self.device)).item())
        if not asked:
            return None
        return reason or (signal.Signals(asked).name if asked > 1 else "a stop on another rank")

    @contextlib.contextmanager
    def collectives(self):
        """Around the epochs: a collective that failed because another rank is gone raises ``PeerLost``."""
        try:
            yield
        except RuntimeError as e:
            news = self.peer_failure(e)
            if news is None:
                raise
            raise PeerLost(news) from e

    def seed_epoch(self, epoch: int) -> None:
        """Dropout and augmentation of ``epoch`` on this rank: its own stream, the same on a resume."""
        torch.manual_seed(_mix(self.seed, epoch, self.rank + 1))

    def validation_shard(self, data: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        rows = torch.arange(self.rank, len(data[0]), self.world_size)
        return tuple(take_rows(t, rows.to(getattr(t, "device", "cpu"))) for t in data)

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` summed over the ranks, in place."""
        dist.all_reduce(tensor)
        return tensor

    def max(self, tensor: torch.Tensor) -> torch.Tensor:
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return tensor

    def min(self, tensor: torch.Tensor) -> torch.Tensor:
        dist.all_reduce(tensor, op=dist.ReduceOp.MIN)
        return tensor

    def leader_first(self, load):
        """``load()`` on each machine's local rank 0 first (it may download and convert data, writing
        the cache), then on the other ranks, which then only read it. A leader's ``UserError`` stops
        every rank (reported by the leader alone). The wait is not bound by ``--dist_timeout``: a
        first download may take longer than a silent peer should."""
        patient = dist.new_group(backend="gloo", timeout=timedelta(seconds=DATA_TIMEOUT_S))
        result, outcome = None, None
        if self.local_rank == 0:
            try:
                result, outcome = load(), "ok"
            except UserError as e:
                outcome = str(e)
        outcomes = [None] * self.world_size
        self._collective(dist.all_gather_object, outcomes, outcome, group=patient)
        failed = [o for o in outcomes if o not in (None, "ok")]
        if failed:
            raise (UserError if outcome not in (None, "ok") else AgreedError)(outcome or failed[0])
        return result if self.local_rank == 0 else load()

    def check_same_data(self, fingerprint: dict) -> None:
        """Refuse to train when a rank loaded other data than rank 0 (machines with different files)."""
        fingerprints = [None] * self.world_size
        self._collective(dist.all_gather_object, fingerprints, fingerprint)
        other = next((rank for rank, f in enumerate(fingerprints) if f != fingerprints[0]), None)
        if other is not None:
            raise (UserError if self.is_main else AgreedError)(
                f"rank {other} loaded other training data than rank 0 ({fingerprints[other]['rows']} rows against "
                f"{fingerprints[0]['rows']}, or other values); give every machine the same files")

    def check_same_settings(self, settings: dict) -> None:
        """Refuse to train when the ranks were started with different flags (``settings``: the
        configuration as plain values; see ``PER_PROCESS_SETTINGS``). Each would train another run,
        and they would stop at the first collective that tells, hung or with a traceback far from
        the cause."""
        everyone = [None] * self.world_size
        self._collective(dist.all_gather_object, everyone, _comparable(settings))
        names = dict.fromkeys(name for s in everyone for name in s)  # rank 0's order, then any others'
        differing = [name for name in names if any(s.get(name) != everyone[0].get(name) for s in everyone)]
        if differing:
            raise (UserError if self.is_main else AgreedError)(
                "ranks disagree on " + "; ".join(_disagreement(name, everyone) for name in differing)
                + "; start every process with the same flags")

    def barrier(self) -> None:
        self._collective(dist.barrier)

    def describe(self, batch_size: int) -> str:
        """Where the run trains, for its first line."""
        backend = "nccl" if self.device.type == "cuda" else "gloo"
        return (f"{self.world_size} process{'es' if self.world_size > 1 else ''} ({backend}) on {self.device.type}, "
                f"global batch {batch_size * self.world_size}")

    def convert_sync_batchnorm(self, model: nn.Module) -> None:
        """``--sync_bn``: every BatchNorm of ``model`` over the global batch (``convert_sync_batchnorm``)."""
        convert_sync_batchnorm(model, self.device)

    def sync_buffers(self, model: nn.Module) -> None:
        """Rank 0's buffers (BatchNorm's running statistics) on every rank: one model, one validation."""
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)

    def agree(self, decide):
        """``decide()`` on rank 0, its result (or its ``UserError``) on every rank."""
        message = [None]
        if self.is_main:
            try:
                message = [("ok", decide())]
            except UserError as e:
                message = [("error", str(e))]
        self._collective(dist.broadcast_object_list, message, src=0)
        kind, value = message[0]
        if kind == "error":
            raise (UserError if self.is_main else AgreedError)(value)
        return value

    def wrap(self, model: nn.Module) -> nn.Module:
        """The DDP module that trains ``model`` (which keeps its own parameters and state_dict keys)."""
        device_ids = [self.device] if self.device.type == "cuda" else None
        wrapped = []  # DDP's constructor broadcasts rank 0's weights: a collective like the others
        self._collective(lambda: wrapped.append(nn.parallel.DistributedDataParallel(model, device_ids=device_ids)))
        return wrapped[0]

    def peer_failure(self, error: BaseException) -> str | None:
        """What to tell the user when ``error`` came from a collective whose peer is gone, else None."""
        if isinstance(error, dist.DistError) or (
                isinstance(error, RuntimeError) and any(m in str(error) for m in PEER_FAILURE_MARKERS)):
            # gloo's text starts with its source file's path and ends with advice; the middle is the news.
            news = re.sub(r"^\[[^\]]*\]\s*", "", first_line(error)).split(". ")[0][:200]
            return (f"rank {self.rank}: another process of the run stopped or stopped answering ({news})")
        return None

    def _collective(self, operation, *args, **kwargs) -> None:
        try:
            operation(*args, **kwargs)
        except RuntimeError as e:  # before training, one line (in the loop the trainer raises ``PeerLost``)
            news = self.peer_failure(e)
            if news is None:
                raise
            raise UserError(news) from e

    @staticmethod
    def _generator(device: torch.device, *numbers: int) -> torch.Generator:
        generator = torch.Generator(device=device)
        generator.manual_seed(_mix(*numbers))
        return generator


def _mix(*numbers: int) -> int:
    """One 63-bit seed from several numbers (distinct tuples give unrelated streams)."""
    value = 0x9E3779B97F4A7C15
    for n in numbers:
        value = ((value ^ (n & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
        value ^= value >> 31
    return value & (2**63 - 1)


def _comparable(settings: dict) -> dict:
    """``settings`` as one flat dict of flag names, without the per-process ones: the model's options
    under their own flags, a dataset's path left out (like its other paths)."""
    flat = {}
    for name, value in settings.items():
        if name in PER_PROCESS_SETTINGS:
            continue
        if name == "dataset" and source_path(value):
            value = with_path(value, "PATH")
        if name == "model_options":
            flat.update(value)
        elif name == "family_settings":  # --model auto: each family's own settings
            flat.update({f"{key} ({family})": v for family, chosen in value.items() for key, v in chosen.items()})
        else:
            flat[name] = value
    return flat


def _disagreement(name: str, everyone: list[dict]) -> str:
    """``--lr: rank 0 has 0.001, rank 1 has 0.01``: rank 0's value and each other one."""
    first = everyone[0].get(name)
    others = [f"rank {rank} has {s.get(name)!r}" for rank, s in enumerate(everyone) if s.get(name) != first]
    return f"--{name}: rank 0 has {first!r}, " + ", ".join(others)


def regrouped_batch_size(config, began_on: int, world_size: int) -> int | None:
    """The ``--batch_size`` per process that keeps a resumed run's global batch (``config`` is its
    checkpoint's, trained by ``began_on`` processes) on ``world_size`` processes instead, e.g. on the
    machine that survived; None when no whole number does.

    The rows each batch draws differ (the shuffle is another world's), so the run goes on alike, not
    exactly; an epoch may take one step more than before (its rows split otherwise), which a cosine
    schedule takes and a one-cycle one, ending at its planned step, does not."""
    if world_size == began_on:
        return config.batch_size
    global_batch = began_on * config.batch_size

    if global_batch % world_size or config.lr_schedule == "onecycle":
        return None
    return global_batch // world_size


@contextlib.contextmanager
def data_parallel(gpu_id: int, timeout_s: float = DEFAULT_TIMEOUT_S):
    """Join the torchrun job this process belongs to (``strategy.under_torchrun()``) and leave it
    afterwards.

    Each process takes the GPU of its local rank (NCCL) when ``gpu_id`` asks for GPUs, else the CPU
    (gloo). Collectives give up after ``timeout_s`` seconds without an answer.
    """
    rank, world_size, local_rank = (int(os.environ[name]) for name in TORCHRUN_VARIABLES)
    device = _device(gpu_id, local_rank)
    backend = "nccl" if device.type == "cuda" else "gloo"
    try:
        dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s),
                                device_id=device if device.type == "cuda" else None)
    except (ValueError, RuntimeError) as e:
        raise UserError(f"rank {rank}: could not join the torchrun job ({backend}): {first_line(e)}") from e
    try:
        yield DataParallel(rank, world_size, local_rank, device)
    finally:
        dist.destroy_process_group()


def _device(gpu_id: int, local_rank: int) -> torch.device:
    if gpu_id < 0:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise UserError(f"--gpu_id {gpu_id}: no CUDA device is available; use --gpu_id -1 for the CPU")
    if local_rank >= torch.cuda.device_count():
        raise UserError(f"local rank {local_rank} has no GPU of its own ({torch.cuda.device_count()} found); start "
                        "at most one process per GPU (--nproc_per_node), or train on CPUs with --gpu_id -1")
    device = torch.device("cuda", local_rank)
    torch.cuda.set_device(device)
    return device


class SyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch normalisation over the global batch on CPUs, where ``nn.SyncBatchNorm`` refuses to train.

    The per-rank sums are all-reduced through autograd (the backward pass all-reduces their
    gradients), so the statistics and their gradients are those of all ranks' rows together.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().forward(x)
        x = x.float()  # statistics in float32, also under bfloat16 autocast (as torch's BatchNorm)
        dims = [0, *range(2, x.dim())]  # every dimension but the channels
        count = torch.tensor([x.numel() / x.size(1)], device=x.device)
        totals = _SumOverRanks.apply(torch.cat([x.sum(dims), (x * x).sum(dims), count]))
        channels = x.size(1)
        n = totals[-1]
        mean = totals[:channels] / n
        var = (totals[channels:2 * channels] / n - mean * mean).clamp(min=0)
        shape = [1, channels] + [1] * (x.dim() - 2)
        y = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                unbiased = var * n / (n - 1).clamp(min=1)
                self.running_mean.lerp_(mean.detach(), self.momentum)
                self.running_var.lerp_(unbiased.detach(), self.momentum)
        return y

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2-D input, got {x.dim()}-D")


class _SumOverRanks(torch.autograd.Function):
    """A tensor summed over the ranks; its gradient is likewise the sum of every rank's gradient
    (each rank's loss depends on every rank's part of the sum)."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        total = tensor.clone()
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


def convert_sync_batchnorm(model: nn.Module, device: torch.device) -> None:
    """Every BatchNorm of ``model`` synchronised across ranks, in place; the state_dict keeps its keys.
    The new modules have new parameters: convert before an optimizer is given them.

    On GPUs torch's own ``nn.SyncBatchNorm``; on CPUs this module's (torch's trains only on GPUs).
    """
    for name, child in model.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            setattr(model, name, _synchronised(child, device))
        else:
            convert_sync_batchnorm(child, device)


def _synchronised(bn: nn.modules.batchnorm._BatchNorm, device: torch.device) -> nn.Module:
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(bn)
    if bn.momentum is None:
        raise UserError("--sync_bn on CPUs needs BatchNorm with a momentum (a cumulative average is not supported)")
    synced = SyncBatchNorm(bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats,
                           device=device, dtype=bn.weight.dtype if bn.affine else None)
    synced.load_state_dict(bn.state_dict())
    synced.train(bn.training)
    return synced
