"""The model registry: ``--model NAME`` picks a module here, and a model file names it again.

Each model module declares ``OPTIONS`` (its command-line options, plain values), ``accepts(shape)``
(None, or why it cannot read such input), ``build(input_shape, output_size, classify, **options)``
and ``MODEL_CLASS``, whose ``architecture()`` gives the constructor's values back; optionally
``CHANNELS_LAST = True`` for convolutional models. A new model is one new file and one line below.
"""

from __future__ import annotations

from types import ModuleType

from torch import nn

from . import cnn, mlp, rnn

MODELS: dict[str, ModuleType] = {
    "mlp": mlp,
    "cnn": cnn,
    "rnn": rnn,
}


def rebuild(name: str, architecture: dict) -> nn.Module:
    """The model a file describes: its registry name and its constructor's values."""
    return MODELS[name].MODEL_CLASS(**architecture)


def name_of(model: nn.Module) -> str:
    """The registry name of a model built from this registry."""
    for name, module in MODELS.items():
        if type(model) is module.MODEL_CLASS:
            return name
    raise ValueError(f"{type(model).__name__} is not a registered model")
