"""The model registry: ``--model NAME`` picks a module here, and a model file names it again.

Each model module declares ``Options`` (a dataclass of its options, each field made with
``options.option``: the flags, their checks and help follow from it), ``accepts(shape)`` (None, or
why it cannot read such input), ``build(input_shape, output_size, classify, **options)`` and
``MODEL_CLASS``, whose ``architecture()`` gives the constructor's values back; optionally
``CHANNELS_LAST = True`` for convolutional models. A new model is one new file and one line below.
torchvision's architectures (``torchvision_models``) are one ``Family`` object each, with the same interface.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from torch import nn

from ..options import Option, options_of
from . import cnn, linear, mlp, rnn, torchvision_models

MODELS: dict[str, ModuleType | Any] = {
    "mlp": mlp,
    "cnn": cnn,
    "rnn": rnn,
    "linear": linear,
    **{arch: torchvision_models.Family(arch) for arch in torchvision_models.ARCHITECTURES},
}


def model_options() -> dict[str, tuple[Option, list[str]]]:
    """Each option name of the registered families, with the families that take it. A name two
    families share is one flag, so it must mean the same kind of value in both (each keeps its default)."""
    found: dict[str, tuple[Option, list[str]]] = {}
    for family, module in MODELS.items():
        for name, opt in options_of(module.Options).items():
            first, families = found.setdefault(name, (opt, []))
            if (first.kind, first.spec.choices) != (opt.kind, opt.spec.choices):
                raise TypeError(f"--{name} is {first.kind.__name__} for {families[0]} but {opt.kind.__name__} "
                                f"for {family}: a shared option name must mean one kind of value")
            families.append(family)
    return found


def rebuild(name: str, architecture: dict) -> nn.Module:
    """The model a file describes: its registry name and its constructor's values."""
    return MODELS[name].MODEL_CLASS(**architecture)


def name_of(model: nn.Module) -> str:
    """The registry name of a model built from this registry."""
    if isinstance(getattr(model, "registry_name", None), str):  # one class serves every torchvision family
        return model.registry_name
    for name, module in MODELS.items():
        if type(model) is module.MODEL_CLASS:
            return name
    raise ValueError(f"{type(model).__name__} is not a registered model")
