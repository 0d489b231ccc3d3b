"""--model auto's choice between two trained families: the lower validation loss, compared row by
row on the same validation rows, with the standard error of that paired difference to say how
sure the choice is.

The lower loss decides, not Breiman's one-standard-error rule, which did worse when measured
(docs/results.md#where-the-defaults-come-from); the standard error is printed beside it.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch import nn

from ..data.dataset import model_input
from ..utils import device_of


@dataclass
class Choice:
    """The verdict on a challenger against the family kept so far, with the numbers behind it."""

    challenger_wins: bool
    difference: float  # the challenger's mean validation loss minus the kept family's
    standard_error: float

    def words(self, challenger: str, kept: str) -> str:
        lower = "lower" if self.difference < 0 else "higher"
        return (f"{challenger}'s validation loss is {lower} by {abs(self.difference):.4g} (standard error "
                f"{self.standard_error:.2g}); kept {challenger if self.challenger_wins else kept}")


def row_losses(model: nn.Module, crit: nn.Module, data: tuple) -> torch.Tensor:
    """The loss of every validation row (float64), with ``crit``'s weights and smoothing."""
    per_row = copy.copy(crit)
    per_row.reduction = "none"
    model.eval()
    device = device_of(model)
    x, y = data
    losses = []
    with torch.no_grad():
        for x_i, y_i in zip(x.split(4096), y.split(4096), strict=True):
            loss = per_row(model(model_input(x_i, device)).float(), y_i.to(device))
            losses.append(loss.reshape(len(x_i), -1).mean(dim=1).double().cpu())
    return torch.cat(losses)


def choose(challenger: nn.Module, kept: nn.Module, crit: nn.Module, valid: tuple) -> Choice:
    """Whether ``challenger``'s mean validation loss is lower than ``kept``'s, and by how much."""
    difference = row_losses(challenger, crit, valid) - row_losses(kept, crit, valid)
    mean = difference.mean().item()
    error = difference.std().item() / math.sqrt(len(difference)) if len(difference) > 1 else 0.0
    return Choice(mean < 0, mean, error)
