"""An MNIST classifier built from the seed's roles: model, trainer, data, entry points."""

from .errors import UserError
from .model import Block, ImageClassifier
from .model_file import load_model
from .predictor import Prediction, Predictor
from .trainer import Trainer, evaluate

__all__ = ["Block", "ImageClassifier", "Prediction", "Predictor", "Trainer", "UserError", "evaluate", "load_model"]
