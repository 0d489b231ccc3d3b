"""The seed's head alone: Linear -> LogSoftmax on the flattened input, no hidden block.

Multinomial logistic regression (least squares for regression): the baseline every other family
should beat, and often the better model for small, nearly linear tables.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class Options:
    """The linear model has no options of its own: its size follows from the data."""


class LinearClassifier(nn.Module):
    """(N, *input_shape) -> (N, output_size) log-probabilities (values, with ``classify=False``)."""

    def __init__(self, input_size: int, output_size: int, classify: bool = True):
        super().__init__()
        self.input_size, self.output_size, self.classify = input_size, output_size, classify
        head = [nn.LogSoftmax(dim=-1)] if classify else []
        self.layers = nn.Sequential(nn.Flatten(), nn.Linear(input_size, output_size), *head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # |x| = (batch_size, *input_shape) -> (batch_size, input_size) -> (batch_size, output_size)
        return self.layers(x)

    def architecture(self) -> dict:
        """Plain values that rebuild this model: ``LinearClassifier(**model.architecture())``."""
        return {"input_size": self.input_size, "output_size": self.output_size, "classify": self.classify}


MODEL_CLASS = LinearClassifier


def accepts(input_shape: tuple[int, ...]) -> str | None:
    """Every shape: the model flattens its input."""
    return None


def build(input_shape: tuple[int, ...], output_size: int, classify: bool) -> LinearClassifier:
    return LinearClassifier(math.prod(input_shape), output_size, classify)
