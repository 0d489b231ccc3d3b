"""An MNIST classifier built from the seed's roles, grown into a package of roles:

- ``models/``: the registry of model families (``mlp``, ``cnn``, ``rnn``), one file each;
- ``data/``: where data comes from (``mnist``, ``datasets``, ``csv_data``) and the preprocessing
  record that turns raw input into model input (``preprocessing``, ``images``);
- ``training/``: the ``Trainer`` loop, its callbacks, checkpoints, configuration and wiring;
- ``inference/``: model files and the ``Predictor``: light, no training or download code;
- ``evaluation/``: plots; ``cli/``: the commands.

The names below are imported on first use, so ``from mnist_classifier import Predictor`` loads
inference only.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Block": "models.mlp",
    "ImageClassifier": "models.mlp",
    "ConvClassifier": "models.cnn",
    "SequenceClassifier": "models.rnn",
    "MODELS": "models",
    "get_hidden_sizes": "models.mlp",
    "split_data": "utils",
    "load_mnist": "data.mnist",
    "load_dataset": "kinds",
    "Trainer": "training.trainer",
    "evaluate": "training.metrics",
    "load_model": "inference.model_file",
    "Prediction": "inference.predictor",
    "Predictor": "inference.predictor",
    "UserError": "errors",
    "Classifier": "estimators",
    "Regressor": "estimators",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'mnist_classifier' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value  # looked up once
    return value
