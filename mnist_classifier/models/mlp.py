"""The seed's model: stacked blocks of Linear -> LeakyReLU -> BatchNorm1d (or Dropout), then LogSoftmax.

Nothing here knows about MNIST: the sizes come from the data. Any input shape is flattened first,
so the same model reads images (N, 1, 28, 28) and table rows (N, features).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import torch
from torch import nn

from ..options import option


@dataclass
class Options:
    """The MLP's options (``--NAME`` on the command line)."""

    n_layers: int = option(5, "linear layers; hidden sizes step evenly down from the input size", low=1, high=64)
    hidden_sizes: list[int] | None = option(None, "comma-separated hidden sizes, e.g. 1024,512; overrides --n_layers",
                                            low=1, high=65536)
    use_dropout: bool = option(False, "Dropout instead of batch norm in each block")
    dropout_p: float = option(0.3, "dropout probability", low=0.0, high=0.99)


def get_hidden_sizes(input_size: int, output_size: int, n_layers: int) -> list[int]:
    """Hidden sizes stepping evenly down from ``input_size`` towards ``output_size``.

    ``n_layers`` counts the linear layers, so there are ``n_layers - 1`` hidden sizes:
    784 -> 10 with 5 layers gives [630, 476, 322, 168].
    """
    step_size = int((input_size - output_size) / n_layers)
    return [input_size - step_size * (i + 1) for i in range(n_layers - 1)]


class Block(nn.Module):
    """Linear -> LeakyReLU -> BatchNorm1d, or Dropout(dropout_p) in place of the batch norm."""

    def __init__(self, input_size: int, output_size: int, use_batch_norm: bool = True,
                 dropout_p: float = Options.dropout_p):
        super().__init__()
        regularizer = nn.BatchNorm1d(output_size) if use_batch_norm else nn.Dropout(dropout_p)
        self.block = nn.Sequential(nn.Linear(input_size, output_size), nn.LeakyReLU(), regularizer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # |x| = (batch_size, input_size) -> (batch_size, output_size)
        return self.block(x)


def head(input_size: int, output_size: int, hidden_sizes: Sequence[int], use_batch_norm: bool, dropout_p: float,
         classify: bool) -> list[nn.Module]:
    """Blocks of ``hidden_sizes``, a Linear to ``output_size`` and, for classes, LogSoftmax."""
    sizes = [input_size, *hidden_sizes]
    blocks = [Block(i, o, use_batch_norm, dropout_p) for i, o in pairwise(sizes)]
    return [*blocks, nn.Linear(sizes[-1], output_size)] + ([nn.LogSoftmax(dim=-1)] if classify else [])


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
        dropout_p: float = Options.dropout_p,
        classify: bool = True,
    ):
        super().__init__()
        self.input_size = input_size
        self.output_size = output_size
        self.hidden_sizes = list(hidden_sizes)
        self.use_batch_norm = use_batch_norm
        self.dropout_p = dropout_p
        self.classify = classify
        # Outside `layers`, so the weights keep the names that model files have always used.
        self.flatten = nn.Flatten()
        self.layers = nn.Sequential(*head(input_size, output_size, self.hidden_sizes, use_batch_norm, dropout_p,
                                          classify))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # |x| = (batch_size, *input_shape) -> (batch_size, input_size) -> (batch_size, output_size)
        return self.layers(self.flatten(x))

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


MODEL_CLASS = ImageClassifier


def accepts(input_shape: tuple[int, ...]) -> str | None:
    """Every shape: the model flattens its input."""
    return None


def build(input_shape: tuple[int, ...], output_size: int, classify: bool, n_layers: int = Options.n_layers,
          hidden_sizes: Sequence[int] | None = None, use_dropout: bool = Options.use_dropout,
          dropout_p: float = Options.dropout_p) -> ImageClassifier:
    """The MLP from the command line's values; hidden sizes follow the seed's rule unless given."""
    input_size = math.prod(input_shape)
    sizes = hidden_sizes or get_hidden_sizes(input_size, output_size, n_layers)
    return ImageClassifier(input_size, output_size, sizes, use_batch_norm=not use_dropout, dropout_p=dropout_p,
                           classify=classify)
