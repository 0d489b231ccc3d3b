"""A recurrent classifier that reads an image row by row, as the book's RNN chapter does: a 28x28
digit is 28 time steps of 28 values. GRU or LSTM, bidirectional by default, then the seed's head:
LeakyReLU -> BatchNorm1d (Dropout on request) -> Linear -> LogSoftmax.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..options import option
from .base import image_shape

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}

@dataclass
class Options:
    """The RNN's options (``--NAME`` on the command line)."""

    # One bidirectional GRU layer: 99.0% on MNIST in 12 epochs; two LSTM layers, as the book stacks
    # them, take 4 times as long an epoch for no better result there.
    cell: str = option("gru", "the recurrent layer", choices=tuple(CELLS))
    hidden_size: int = option(128, "features of the recurrent state (per direction)", low=1, high=16384)
    n_layers: int = option(1, "stacked recurrent layers", low=1, high=16)
    bidirectional: bool = option(True, "read the rows top-down and bottom-up")
    use_dropout: bool = option(False, "Dropout instead of batch norm in the head")
    dropout_p: float = option(0.2, "dropout probability, also between recurrent layers", low=0.0, high=0.99)


class SequenceClassifier(nn.Module):
    """Rows of an image as a sequence: (N, C, H, W) is read as H steps of C * W values."""

    def __init__(
        self,
        input_shape: Sequence[int],
        output_size: int,
        hidden_size: int = Options.hidden_size,
        n_layers: int = Options.n_layers,
        cell: str = Options.cell,
        bidirectional: bool = Options.bidirectional,
        use_batch_norm: bool = True,
        dropout_p: float = Options.dropout_p,
        classify: bool = True,
    ):
        super().__init__()
        self.input_shape, self.output_size = list(input_shape), output_size
        self.hidden_size, self.n_layers, self.cell = hidden_size, n_layers, cell
        self.bidirectional, self.use_batch_norm = bidirectional, use_batch_norm
        self.dropout_p, self.classify = dropout_p, classify

        channels, _, width = input_shape
        self.rnn = CELLS[cell](channels * width, hidden_size, num_layers=n_layers, batch_first=True,
                               bidirectional=bidirectional, dropout=dropout_p if n_layers > 1 else 0.0)
        features = hidden_size * (2 if bidirectional else 1)
        regularizer = nn.BatchNorm1d(features) if use_batch_norm else nn.Dropout(dropout_p)
        layers = [nn.LeakyReLU(), regularizer, nn.Linear(features, output_size)]
        self.head = nn.Sequential(*layers, *([nn.LogSoftmax(dim=-1)] if classify else []))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # |x| = (batch_size, channels, height, width) -> (batch_size, height, channels * width)
        rows = x.permute(0, 2, 1, 3).flatten(2)
        if rows.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            # oneDNN has no bfloat16 LSTM on CPUs (it refuses the primitive): float32 there.
            with torch.autocast("cpu", enabled=False):
                _, state = self.rnn(rows.float())
        else:
            _, state = self.rnn(rows)
        hidden = state[0] if isinstance(state, tuple) else state  # an LSTM also returns its cell state
        # |hidden| = (n_layers * directions, batch_size, hidden_size): the last layer's final states,
        # both directions side by side, summarise the whole image.
        last = hidden[-2:] if self.bidirectional else hidden[-1:]
        return self.head(torch.cat(list(last), dim=-1))

    def architecture(self) -> dict:
        """Plain values that rebuild this model: ``SequenceClassifier(**model.architecture())``."""
        return {
            "input_shape": list(self.input_shape),
            "output_size": self.output_size,
            "hidden_size": self.hidden_size,
            "n_layers": self.n_layers,
            "cell": self.cell,
            "bidirectional": self.bidirectional,
            "use_batch_norm": self.use_batch_norm,
            "dropout_p": self.dropout_p,
            "classify": self.classify,
        }


MODEL_CLASS = SequenceClassifier


def accepts(input_shape: tuple[int, ...]) -> str | None:
    return image_shape(input_shape)


def build(input_shape: tuple[int, ...], output_size: int, classify: bool, cell: str = Options.cell,
          hidden_size: int = Options.hidden_size, n_layers: int = Options.n_layers,
          bidirectional: bool = Options.bidirectional, use_dropout: bool = Options.use_dropout,
          dropout_p: float = Options.dropout_p) -> SequenceClassifier:
    return SequenceClassifier(input_shape, output_size, hidden_size, n_layers, cell, bidirectional,
                              use_batch_norm=not use_dropout, dropout_p=dropout_p, classify=classify)
