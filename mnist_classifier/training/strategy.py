"""How a run is spread over processes, as Lightning's ``Strategy``: the one place the trainer and the
run ask which rows to take, how sums add up, who prints and who writes.

``SingleProcess`` is the plain case: every row, sums as they are, decisions made here and now.
``distributed.DataParallel`` is the same interface for a torchrun job. The trainer and the run call
these methods unconditionally, so neither has a branch for distributed training;
``cli/train.py`` picks one, and only a torchrun job calls ``distributed``.

"""

from __future__ import annotations

import contextlib
import os

import torch


class SingleProcess:
    """Training in this process alone, on ``device``."""

    rank, world_size, is_main = 0, 1, True
    distributed = False  # no other process to agree with (the run skips what only a job needs)

    def __init__(self, device: torch.device | None = None, seed: int = 0):
        self.device, self.seed = device or torch.device("cpu"), seed

    # What the trainer asks, epoch by epoch.
    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        return model

    def epoch_order(self, x, epoch: int, batch_size: int | None = None) -> torch.Tensor:
        """A fresh order every epoch, drawn on the data's device so that indexing needs no copy. Rows
        with their own order have it: a cache read from disk block by block (``image_cache.FileRows``),
        texts by length in batches of ``batch_size`` (``tokens.TokenRows``)."""
        if hasattr(x, "epoch_order"):
            return x.epoch_order(batch_size=batch_size)
        return torch.randperm(len(x), device=x.device)

    def validation_shard(self, data: tuple) -> tuple:
        return data

    def before_validation(self, model: torch.nn.Module) -> None: ...

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor

    def min(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor

    def agreed_stop(self, reason: str | None, step: int) -> str | None:
        """The reason to stop now (a signal, a callback's request), or None to go on."""
        return reason

    def collectives(self):
        """Around the epochs: turns a lost peer into ``PeerLost`` (nothing to lose here)."""
        return contextlib.nullcontext()

    # What the run asks, before and after training.
    def agree(self, decide):
        """``decide()``'s result, the same in every process (here: this one's)."""
        return decide()

    def leader_first(self, load):
        """``load()``, first on each machine's first process (here: at once)."""
        return load()

    def check_same_data(self, fingerprint: dict) -> None: ...

    def check_same_settings(self, settings: dict) -> None: ...

    def barrier(self) -> None: ...

    def shard_size(self, n_rows: int) -> int:
        return n_rows

    def describe(self, batch_size: int) -> str:
        """Where the run trains, for its first line."""
        return str(self.device)


# What torchrun gives every process it starts.
TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


def under_torchrun() -> bool:
    return all(name in os.environ for name in TORCHRUN_VARIABLES)
