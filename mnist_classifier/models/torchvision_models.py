"""torchvision's classification architectures as model families: ``--model resnet18`` and the rest of
``ARCHITECTURES``, built by ``torchvision.models.get_model`` for the data's channels, size and classes.

Each one is wrapped the same way (``TorchvisionClassifier``): the pixels are normalised with the
statistics its published weights were trained on, inputs trained smaller than ``MIN_SIDE`` are scaled up,
the first convolution reads the data's channels, the head has one output per class, and a
LogSoftmax ends it as the seed's models end. The normalisation and scaling live in the model, so
exports, the server and ``Predictor`` apply them without knowing about it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .base import image_shape

# The classification models the registry offers: the families the issue names, small enough to
# train on a CPU (the larger variants of each, e.g. resnet152 or efficientnet_b7, are a name away
# in torchvision but take minutes per step there).
ARCHITECTURES = (
    "resnet18", "resnet34", "resnet50",
    "mobilenet_v3_small", "mobilenet_v3_large",
    "efficientnet_b0", "efficientnet_b1", "efficientnet_b2",
    "convnext_tiny",
    "regnet_x_400mf", "regnet_y_400mf", "regnet_y_800mf",
)
# Every torchvision classification weight was trained on ImageNet pixels normalised with these.
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
# ConvNeXt's four stride-2 stages (after a stride-4 stem) need 32 pixels; 28-pixel digits are scaled up.
MIN_SIDE = 32


@dataclass
class Options:
    """torchvision's architectures take no options here: their sizes are torchvision's."""


class TorchvisionClassifier(nn.Module):
    """(N, C, H, W) pixels in [0, 1] -> (N, output_size) log-probabilities (values, with
    ``classify=False``), through torchvision's ``arch``."""

    def __init__(self, arch: str, input_shape: list[int], output_size: int, classify: bool = True):
        super().__init__()
        if arch not in ARCHITECTURES:
            raise ValueError(f"{arch!r} is not one of the torchvision architectures offered "
                             f"({', '.join(ARCHITECTURES)})")
        self.arch, self.input_shape, self.output_size = arch, list(input_shape), output_size
        self.classify = classify
        self.registry_name = arch
        # Imported here, not at the top: loading a model file of another family never loads torchvision.
        import torchvision

        channels = self.input_shape[0]
        self.upscale = max(1.0, MIN_SIDE / min(self.input_shape[1:]))
        self.net = torchvision.models.get_model(arch, weights=None, num_classes=output_size)
        _set_in_channels(self.net, channels)
        mean, std = _statistics(channels)
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # |x| = (batch_size, channels, h, w) -> (batch_size, output_size)
        if self.upscale > 1:  # a factor fixed at build time: exports trace it as a constant
            x = F.interpolate(x, scale_factor=self.upscale, mode="bilinear", align_corners=False)
        output = self.net((x - self.mean) / self.std)
        return F.log_softmax(output, dim=-1) if self.classify else output

    def architecture(self) -> dict:
        """Plain values that rebuild this model: ``TorchvisionClassifier(**model.architecture())``."""
        return {"arch": self.arch, "input_shape": list(self.input_shape), "output_size": self.output_size,
                "classify": self.classify}


def _statistics(channels: int) -> tuple[list[float], list[float]]:
    """ImageNet's per-channel mean and std for RGB; their averages for any other channel count."""
    if channels == 3:
        return list(IMAGENET_MEAN), list(IMAGENET_STD)
    return [sum(IMAGENET_MEAN) / 3] * channels, [sum(IMAGENET_STD) / 3] * channels


def first_conv_name(net: nn.Module) -> str | None:
    """The name of ``net``'s first convolution (None without one)."""
    return next((name for name, module in net.named_modules() if isinstance(module, nn.Conv2d)), None)


def _set_in_channels(net: nn.Module, channels: int) -> None:
    """Replace the first convolution by one reading ``channels`` planes (torchvision's take 3)."""
    name = first_conv_name(net)
    conv = net.get_submodule(name)
    if conv.in_channels == channels:
        return
    parent_name, _, attribute = name.rpartition(".")
    new = nn.Conv2d(channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, conv.dilation,
                    conv.groups, conv.bias is not None)
    setattr(net.get_submodule(parent_name) if parent_name else net, attribute, new)


class Family:
    """A torchvision architecture as a model family (the interface ``models/__init__.py`` describes)."""

    Options = Options
    MODEL_CLASS = TorchvisionClassifier
    CHANNELS_LAST = True  # oneDNN's convolutions run faster in NHWC

    def __init__(self, arch: str):
        self.arch = arch

    @staticmethod
    def accepts(input_shape: tuple[int, ...]) -> str | None:
        return image_shape(input_shape)

    def build(self, input_shape: tuple[int, ...], output_size: int, classify: bool) -> TorchvisionClassifier:
        return TorchvisionClassifier(self.arch, list(input_shape), output_size, classify)
