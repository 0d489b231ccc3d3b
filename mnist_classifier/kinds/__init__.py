"""The kinds of data, one module each: images (``images.py``), picture folders (``folders.py``),
tables (``tables.py``) and texts (``texts.py``).

A kind says everything the rest of the code asks about its data: how a source is named
(``--dataset PREFIX:PATH`` or a built-in name) and read, its preprocessing record, the task, which
families fit it and their defaults, what ``Predictor``, the server and an export take. Nothing
outside these modules asks which kind it has. ``KINDS`` maps a model file's record ``kind`` to
its class; a new kind is one module and one line here.
"""

from __future__ import annotations

from ..errors import UserError
from .base import CLASSIFICATION, REGRESSION, Kind
from .folders import PictureFolder
from .images import Images
from .tables import Table
from .texts import Text

__all__ = ["CLASSIFICATION", "KINDS", "REGRESSION", "Kind", "as_record", "kind_of", "load_dataset", "source_path",
           "source_prefix"]

KINDS: dict[str, type[Kind]] = {
    Images.kind: Images,
    Table.kind: Table,
    PictureFolder.kind: PictureFolder,
    Text.kind: Text,
}


def kind_of(dataset: str) -> type[Kind]:
    """The kind ``--dataset dataset`` names."""
    for kind in KINDS.values():
        if kind.owns(dataset):
            return kind
    names = [name for kind in KINDS.values() for name in kind.builtins]
    prefixes = [f"{kind.prefix}:PATH" for kind in KINDS.values() if kind.prefix]
    raise UserError(f"--dataset {dataset!r}: unknown; choose one of {', '.join(names)}, {' or '.join(prefixes)}")


def source_path(dataset: str) -> str | None:
    """The path in ``PREFIX:PATH`` (a colon in the path stays in the path); None for a built-in set."""
    prefix, colon, path = dataset.partition(":")
    return path if colon and any(kind.prefix == prefix for kind in KINDS.values()) else None


def source_prefix(dataset: str) -> str | None:
    """The prefix in ``PREFIX:PATH``, which names the options its reader takes; None for a built-in set."""
    return dataset.partition(":")[0] if source_path(dataset) is not None else None


def with_path(dataset: str, path: str) -> str:
    """``dataset`` (``PREFIX:PATH``) with another path."""
    return f"{dataset.partition(':')[0]}:{path}"


def as_record(record: dict) -> Kind:
    """The kind of a (checked) plain record, around its values."""
    return KINDS[record["kind"]].from_dict(record)


def load_dataset(name: str, data_dir: str = "data", **options):
    """The raw data ``name`` names (a built-in set, ``csv:PATH`` or ``folder:PATH``); ``options`` go to
    its reader (``target``, ``test_csv``, ... for tables; ``image_size``, ``resize``, ``strict`` for
    folders). ``Dataset.prepared()`` turns it into model input."""
    return kind_of(name).read(name, data_dir, **options)
