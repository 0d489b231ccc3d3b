"""--model auto's choice between two trained families: the simpler one stays unless the other's
validation loss is lower by more than one standard error of the difference.

With a few hundred validation rows, two validation losses differ by chance as much as by merit:
picking whichever is lower picked an MLP over a better linear model on small sets. Breiman's
one-standard-error rule takes the noise into account: both models' losses are compared row by row
on the same validation rows, and the more complex family must win by more than the standard error
of that paired difference.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch import nn

from ..data.dataset import model_input
from .trainer import device_of


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
    """Whether ``challenger`` beats ``kept`` on the validation rows by more than one standard error."""
    difference = row_losses(challenger, crit, valid) - row_losses(kept, crit, valid)
    mean = difference.mean().item()
    error = difference.std().item() / math.sqrt(len(difference)) if len(difference) > 1 else 0.0
    return Choice(mean + error < 0, mean, error)
