"""Small helpers shared by the entry points: hidden sizes, the train/validation split, the device."""

from __future__ import annotations

import torch

from .errors import UserError
from .models.mlp import get_hidden_sizes

__all__ = ["default_gpu_id", "device_of", "get_device", "get_hidden_sizes", "split_data", "split_indices"]


def split_data(
    x: torch.Tensor, y: torch.Tensor, train_ratio: float = 0.8, generator: torch.Generator | None = None
) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """Shuffle, then split into disjoint ``(x, y)`` train and validation parts."""
    train_idx, valid_idx = split_indices(x.size(0), train_ratio, generator)
    return (x[train_idx], y[train_idx]), (x[valid_idx], y[valid_idx])


def split_indices(n: int, train_ratio: float = 0.8, generator: torch.Generator | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Disjoint random training and validation row indices: what ``split_data`` takes."""
    indices = torch.randperm(n, generator=generator)
    train_count = int(n * train_ratio)
    return indices[:train_count], indices[train_count:]


def default_gpu_id() -> int:
    """0 when CUDA is available, else -1 (the CPU): the seed's default for ``--gpu_id``."""
    return 0 if torch.cuda.is_available() else -1


def get_device(gpu_id: int) -> torch.device:
    """The torch device for ``--gpu_id``: -1 is the CPU; a GPU that does not exist is refused."""
    if gpu_id < 0:
        return torch.device("cpu")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpu_id >= count:
        found = f"{count} CUDA device(s) found" if count else "no CUDA device is available"
        raise UserError(f"--gpu_id {gpu_id}: {found}; use --gpu_id -1 for the CPU")
    return torch.device(f"cuda:{gpu_id}")


def device_of(model: torch.nn.Module) -> torch.device:
    """Where ``model``'s parameters are (the CPU for a model without any)."""
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")
