"""The model: stacked blocks of Linear -> LeakyReLU -> BatchNorm1d (or Dropout), then LogSoftmax.

Nothing here knows about MNIST: the sizes come from the data.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import torch
from torch import nn


class Block(nn.Module):
    """Linear -> LeakyReLU -> BatchNorm1d, or Dropout(dropout_p) in place of the batch norm."""

    def __init__(self, input_size: int, output_size: int, use_batch_norm: bool = True, dropout_p: float = 0.4):
        super().__init__()
        self.input_size = input_size
        self.output_size = output_size
        self.use_batch_norm = use_batch_norm
        self.dropout_p = dropout_p
        regularizer = nn.BatchNorm1d(output_size) if use_batch_norm else nn.Dropout(dropout_p)
        self.block = nn.Sequential(nn.Linear(input_size, output_size), nn.LeakyReLU(), regularizer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # |x| = (batch_size, input_size) -> (batch_size, output_size)
        return self.block(x)


class ImageClassifier(nn.Module):
    """Blocks of the given hidden sizes, a Linear to ``output_size``, then log-probabilities.

    With ``classify=False`` the last Linear's output is returned as it is: a regression model.
    """

    def __init__(
        self,
        input_size: int,
        output_size: int,
        hidden_sizes: Sequence[int] = (500, 400, 300, 200, 100),
        use_batch_norm: bool = True,
        dropout_p: float = 0.3,
        classify: bool = True,
    ):
        super().__init__()
        self.input_size = input_size
        self.output_size = output_size
        self.hidden_sizes = list(hidden_sizes)
        self.use_batch_norm = use_batch_norm
        self.dropout_p = dropout_p
        self.classify = classify

        sizes = [input_size, *self.hidden_sizes]
        blocks = [Block(i, o, use_batch_norm, dropout_p) for i, o in pairwise(sizes)]
        head = [nn.Linear(sizes[-1], output_size)] + ([nn.LogSoftmax(dim=-1)] if classify else [])
        self.layers = nn.Sequential(*blocks, *head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # |x| = (batch_size, input_size) -> (batch_size, output_size) log-probabilities
        return self.layers(x)

    def architecture(self) -> dict:
        """Plain values that rebuild this model: ``ImageClassifier(**model.architecture())``."""
        return {
            "input_size": self.input_size,
            "output_size": self.output_size,
            "hidden_sizes": list(self.hidden_sizes),
            "use_batch_norm": self.use_batch_norm,
            "dropout_p": self.dropout_p,
            "classify": self.classify,
        }
