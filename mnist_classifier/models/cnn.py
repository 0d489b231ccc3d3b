"""A convolutional classifier built the seed's way: blocks of Conv2d -> LeakyReLU -> BatchNorm2d
(Dropout on request), each stage halving the image with max pooling, then the MLP's blocks as the head.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..options import option
from .base import image_shape
from .mlp import head


@dataclass
class Options:
    """The CNN's options (``--NAME`` on the command line)."""

    # Few channels at full resolution: on a CPU the first stage costs most (its activations are the
    # largest), so doubling its channels nearly doubles an epoch.

    channels: list[int] = option([16, 32, 64], "comma-separated output channels of each stage (each halves the "
                                 "image)", low=1, high=4096)
    convs_per_stage: int = option(1, "convolution blocks per stage", low=1, high=16)
    hidden_sizes: list[int] = option([256], "comma-separated sizes of the head's linear blocks", low=1, high=65536)
    use_dropout: bool = option(False, "Dropout instead of batch norm in each block")
    dropout_p: float = option(0.3, "dropout probability", low=0.0, high=0.99)
    global_pool: bool = option(False, "average each channel to one value before the head (without it, the last "
                               "feature map is averaged to its size at the trained resolution; either way the model "
                               "reads pictures of any size)")


class ConvBlock(nn.Module):
    """Conv2d (3x3, same size) -> LeakyReLU -> BatchNorm2d, or Dropout in place of the batch norm."""

    def __init__(self, in_channels: int, out_channels: int, use_batch_norm: bool = True,
                 dropout_p: float = Options.dropout_p):
        super().__init__()
        # The batch norm's shift makes a convolution bias redundant.
        conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=not use_batch_norm)
        regularizer = nn.BatchNorm2d(out_channels) if use_batch_norm else nn.Dropout(dropout_p)
        self.block = nn.Sequential(conv, nn.LeakyReLU(), regularizer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # |x| = (batch_size, in_channels, h, w) -> (batch_size, out_channels, h, w)
        return self.block(x)


class ConvClassifier(nn.Module):
    """Stages of ``convs_per_stage`` ConvBlocks and a 2x2 max pool, then linear blocks and LogSoftmax."""

    def __init__(
        self,
        input_shape: Sequence[int],
        output_size: int,
        channels: Sequence[int] = (16, 32, 64),
        convs_per_stage: int = Options.convs_per_stage,
        hidden_sizes: Sequence[int] = (256,),
        use_batch_norm: bool = True,
        dropout_p: float = Options.dropout_p,
        classify: bool = True,
        global_pool: bool = Options.global_pool,
    ):
        super().__init__()
        self.input_shape, self.output_size = list(input_shape), output_size
        self.channels, self.convs_per_stage = list(channels), convs_per_stage
        self.hidden_sizes, self.use_batch_norm = list(hidden_sizes), use_batch_norm
        self.dropout_p, self.classify, self.global_pool = dropout_p, classify, global_pool

        in_channels, height, width = input_shape
        stages = []
        for out_channels in self.channels:
            for _ in range(convs_per_stage):
                stages.append(ConvBlock(in_channels, out_channels, use_batch_norm, dropout_p))
                in_channels = out_channels
            if min(height, width) >= 2:  # small images (8x8 digits) stop shrinking at 1x1
                stages.append(nn.MaxPool2d(2))
                height, width = height // 2, width // 2
        # The feature map is averaged to the size it has at the trained resolution (at that resolution an
        # identity), so a picture of another size still gives the head the inputs it was built for; a
        # global pool averages it to one value per channel instead. Neither holds weights.
        stages.append(nn.AdaptiveAvgPool2d(1 if global_pool else (height, width)))
        self.features = nn.Sequential(*stages)
        n_features = in_channels if global_pool else in_channels * height * width
        self.head = nn.Sequential(nn.Flatten(), *head(n_features, output_size, self.hidden_sizes, use_batch_norm,
                                                      dropout_p, classify))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # |x| = (batch_size, channels, height, width) -> (batch_size, output_size) log-probabilities
        return self.head(self.features(x))

    def architecture(self) -> dict:
        """Plain values that rebuild this model: ``ConvClassifier(**model.architecture())``."""
        return {
            "input_shape": list(self.input_shape),
            "output_size": self.output_size,
            "channels": list(self.channels),
            "convs_per_stage": self.convs_per_stage,
            "hidden_sizes": list(self.hidden_sizes),
            "use_batch_norm": self.use_batch_norm,
            "dropout_p": self.dropout_p,
            "classify": self.classify,
            "global_pool": self.global_pool,
        }


MODEL_CLASS = ConvClassifier
CHANNELS_LAST = True  # train in NHWC memory layout: oneDNN's convolutions are faster on it


def accepts(input_shape: tuple[int, ...]) -> str | None:
    return image_shape(input_shape)


def build(input_shape: tuple[int, ...], output_size: int, classify: bool, channels: Sequence[int] = (16, 32, 64),
          convs_per_stage: int = Options.convs_per_stage, hidden_sizes: Sequence[int] = (256,),
          use_dropout: bool = Options.use_dropout, dropout_p: float = Options.dropout_p,
          global_pool: bool = Options.global_pool) -> ConvClassifier:
    return ConvClassifier(input_shape, output_size, channels, convs_per_stage, hidden_sizes,
                          use_batch_norm=not use_dropout, dropout_p=dropout_p, classify=classify,
                          global_pool=global_pool)

