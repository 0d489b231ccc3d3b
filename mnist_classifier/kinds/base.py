"""What every kind of data answers: the ``Kind`` base class.

A kind is one class. Its class attributes and class methods say how a source of that kind is
named and read, which families fit it and with which defaults; an instance is its preprocessing
record (the plain values a model file holds), fitted on the training rows and applied by every
consumer: the trainer, ``Predictor``, the server, an export. The defaults here are what most
kinds answer; a kind overrides what differs.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..data.images import WORKING_SIDE
from ..errors import UserError

CLASSIFICATION, REGRESSION = "classification", "regression"
DIGIT, FILL = "digit", "fill"  # how people's pictures are prepared for an image set (kinds/images.py)
# What a person can hand over as a picture: a path, an open file, a PIL image.
PICTURE_SOURCES = (str, Path, Image.Image, io.IOBase)


class Kind:
    """One kind of data: its source, its defaults, and (an instance) its preprocessing record."""

    kind: str  # the record's "kind" in a model file: the registry's key
    name: str  # what a model of this kind takes, in words: "images", "table rows"
    title: str  # the kind itself, in words: "images", "tables"
    prefix: str | None = None  # --dataset PREFIX:PATH names a source of this kind
    builtins: tuple[str, ...] = ()  # --dataset NAME: the built-in sets of this kind
    unit = "rows"  # what one example is called in a result line
    takes_pictures = False  # people's pictures (paths, PIL images): Predictor's paths, the server, --tta
    takes_texts = False  # strings: Predictor's texts, mnist-predict's .txt files and text columns
    keeps_started_record = False  # --init_from: the model's record, not a new fit (a text model's tokenizer)
    default_model = "mlp"
    auto_families: tuple[str, ...] = ()  # the families --model auto chooses between; () refuses it
    sized_from_rows = False  # batch size and epochs left to None are chosen from the number of rows
    working_side = WORKING_SIDE  # how large a person's picture is decoded before it is prepared

    def __init__(self, values: dict):
        self.values = values

    # --- the source -------------------------------------------------------------------------

    @classmethod
    def owns(cls, dataset: str) -> bool:
        """Whether ``--dataset dataset`` names data of this kind."""
        prefix, colon, _ = dataset.partition(":")
        return bool(colon and cls.prefix and prefix == cls.prefix) or dataset in cls.builtins

    @classmethod
    def load(cls, dataset: str, data_dir: str, **options):
        """The raw ``Dataset`` ``dataset`` names; ``options`` are the reader's. Each kind imports its
        reader inside ``load``: predicting never needs one (``tests/test_layout.py`` holds to it)."""
        raise NotImplementedError

    @classmethod
    def read(cls, dataset: str, data_dir: str, **options):
        """``load``, the ``Dataset`` marked as of this kind (it fits and applies its records)."""
        loaded = cls.load(dataset, data_dir, **options)
        loaded.kind = cls
        return loaded

    @classmethod
    def reader_options(cls, config) -> dict:
        """What the reader takes from a run's configuration besides the options that apply to this
        kind's prefix."""
        return {}

    @classmethod
    def defaults(cls, model: str) -> dict:
        """Settings that beat the configuration's defaults for ``model`` on this kind."""
        return {}

    @classmethod
    def schedule(cls, rows: int, batch_size: int | None) -> tuple[int, int]:
        """Batch size (unless given) and epochs for ``rows`` training rows, where ``sized_from_rows``."""
        raise NotImplementedError

    @classmethod
    def settings_found(cls, dataset) -> dict:
        """Settings the reader chose from the data (kept, so that evaluation and resumes read alike)."""
        return {}

    @classmethod
    def fit_dataset(cls, dataset, rows: torch.Tensor | None = None) -> Kind:
        """The record for a raw ``Dataset``, fitted on its training rows (``rows`` of them when given)."""
        raise NotImplementedError

    # --- the record: what every kind writes --------------------------------------------------

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one model input."""
        raise NotImplementedError

    def apply(self, x, name: str = "input") -> torch.Tensor:
        """Raw input (one or a batch) as a float32 batch of model input; ``name`` for messages."""
        raise NotImplementedError

    def check(self) -> bool:
        """Whether the plain values fit together (a model file's record may be edited or damaged)."""
        raise NotImplementedError

    def describe(self) -> str:
        """The record in a few words, for messages."""
        raise NotImplementedError

    def preparation(self) -> str:
        """How raw input becomes model input, in words for an export's consumers in other languages."""
        raise NotImplementedError

    # --- the record: what most kinds share ----------------------------------------------------

    @classmethod
    def from_dict(cls, values: dict):
        return cls(values)

    def to_dict(self) -> dict:
        return dict(self.values)

    def prepare_rows(self, x, name: str = "input"):
        """A data set's rows as the trainer takes them: by default, model input."""
        return self.apply(x, name)

    def to_target(self, y: torch.Tensor) -> torch.Tensor:
        return y

    def from_output(self, output: torch.Tensor) -> torch.Tensor:
        return output

    target_scale = 1.0

    def gaps_note(self, x, name: str = "input") -> str | None:
        """A line on gaps in ``x`` that the training rows did not have; None when there are none."""
        return None

    def reread_options(self) -> dict:
        """Reader options that read the source again at this record's shape."""
        return {}

    def first_line(self, dataset, config) -> str | None:
        """What was found in the data, before any training."""
        return dataset.found

    @classmethod
    def other_test_data(cls, saved: dict, dataset: str, data_dir: str):
        """Another source's test rows to judge a model of this kind on; most kinds are judged on their
        own test rows only."""
        raise UserError(f"--dataset {dataset}: another dataset can be given only as folder:PATH, for a model "
                        "trained on a folder of pictures")

    # --- consumers --------------------------------------------------------------------------

    def not_pictures(self) -> str:
        """The one refusal of a picture, wherever one is given to a model of this kind."""
        return f"this model takes {self.name} ({self.describe()}), not images"

    def prepare_image(self, image: Image.Image, name: str = "image") -> np.ndarray:
        raise UserError(f"{name}: {self.not_pictures()}")

    def predict(self, predictor, inputs, top_k: int) -> list:
        """``Predictor.predict`` for this kind: by default, everything but a picture is rows. A path
        is a picture here (``PICTURE_SOURCES`` holds ``str``): a kind whose inputs are strings (text)
        overrides this."""
        if isinstance(inputs, PICTURE_SOURCES):
            raise UserError(self.not_pictures())
        return predictor.rows(inputs, top_k)

    @property
    def columns(self) -> list[dict] | None:
        """The named columns a model of this kind reads from a CSV file of rows (``mnist-predict``);
        None: it reads none."""
        return None

    def drawing(self) -> bool:
        """Whether the served page offers a drawing pad."""
        return False

    def example_input(self, rows: int) -> torch.Tensor:
        """Model input an export is traced on (its values do not matter, its type and shape do)."""
        return torch.zeros(rows, *self.input_shape)

    def export_input(self) -> dict:
        """The input an export takes, described for its consumers: its axes and dtype."""
        return {"shape": ["batch", *self.input_shape], "dtype": "float32"}

    def export_files(self) -> dict[str, str]:
        """Files written beside an export, by the suffix they add to its name: none for most kinds."""
        return {}

    def family(self, name: str):
        """The model family ``--model name`` builds for this data: the registry's, for most kinds."""
        from ..models import MODELS

        return MODELS[name]

    def parity_inputs(self, rows: int, generator: torch.Generator) -> torch.Tensor:
        """Model inputs of the kind it sees, to check an export against PyTorch."""
        return torch.randn((rows, *self.input_shape), generator=generator)


def as_float_tensor(x, name: str) -> tuple[torch.Tensor, bool]:
    """``x`` (a tensor, an array, nested lists) as a float32 tensor, and whether it was uint8."""
    if isinstance(x, torch.Tensor):
        if x.dtype == torch.bool or x.is_complex():
            raise UserError(f"{name}: expected real numbers, got a tensor of {x.dtype}")
        if x.layout != torch.strided or x.is_meta:
            raise UserError(f"{name}: expected a dense tensor with values, got a {x.layout} tensor on {x.device}")
        return x.detach().cpu().float(), x.dtype == torch.uint8
    try:
        array = np.asarray(x)
    except ValueError as e:  # ragged nested lists
        raise UserError(f"{name}: not a rectangular array of numbers ({e})") from None
    if array.dtype.kind not in "uif":
        raise UserError(f"{name}: expected an array of numbers, got one of {array.dtype}")
    return torch.from_numpy(array.astype(np.float32)), array.dtype == np.uint8


def as_batch(batch: torch.Tensor, shape: tuple[int, ...], name: str) -> torch.Tensor:
    """One input or a batch of them as (N, *shape)."""
    size = math.prod(shape)
    # One input: its own shape, flattened, or (for one channel) without the channel axis.
    singles = {shape, (size,)} | ({shape[1:]} if len(shape) == 3 and shape[0] == 1 else set())
    if tuple(batch.shape) in singles:
        return batch.reshape(1, *shape)
    if batch.dim() >= 2 and tuple(batch.shape[1:]) in singles:
        return batch.reshape(len(batch), *shape)
    raise UserError(f"{name}: the model takes inputs of shape {shape} ({size} values), one or a batch of them; "
                    f"got an array of shape {tuple(batch.shape)}")
