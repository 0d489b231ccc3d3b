"""``--dataset folder:PATH``: a folder of pictures, one subfolder per class (ImageFolder's layout).

``PATH/train`` and ``PATH/test`` (and ``PATH/valid`` or ``PATH/val``), when they exist, are the
splits; otherwise 20% of each class is the test set (seeded, stratified, as for CSV files). Files
whose names are not pictures are ignored and counted; pictures that cannot be read are named and
skipped (``--strict`` refuses them). Every picture is decoded once into the cache of
``image_cache.py``; the ``Dataset`` holds its uint8 rows, which the trainer turns into floats a
batch at a time.
"""

from __future__ import annotations

import hashlib
import os
import random
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from stat import S_ISREG

import torch

from ..errors import UserError, printable
from ..resources import available_memory
from . import image_cache
from .dataset import CLASSIFICATION, Dataset, split_test, take_rows
from .images import IMAGE_SUFFIXES
from .pictures import CROP

# The split folders' names as people write them, matched case-insensitively: ``Train/``, Kaggle's
# ``training_set/`` and ``test_set/``, Keras' ``validation/``. The first of each is how messages name it.
SPLIT_FOLDERS = {"train": ("train", "training", "train_set", "training_set"),
                 "valid": ("valid", "val", "validation", "valid_set", "val_set", "validation_set"),
                 "test": ("test", "testing", "test_set", "testing_set")}
# The default --image_size: the pictures' median short side, within these bounds. Above 64 px an
# epoch of the default CNN on 2 CPU cores takes minutes per 10,000 pictures.
AUTO_SIDE = (8, 64)
SAMPLE = 500  # new pictures whose headers are read first, to predict the shape they are decoded at
# A cache may be held in memory when it takes at most this share of the memory the run may use.
MEMORY_SHARE = 0.25  # the training and validation rows are copies of the cache's: up to twice it, at once


@dataclass
class Found:
    """What a folder holds: each split's pictures (path relative to the folder, class index)."""

    root: Path
    classes: list[str]
    splits: dict[str, list[tuple[str, int]]]
    ignored: int = 0
    notes: list[str] = field(default_factory=list)  # folders skipped: link loops, unreadable
    stamps: dict[str, image_cache.Stamp] = field(default_factory=dict)  # each picture's size and mtime
    valid_folder: Path | None = None
    seen: dict = field(default_factory=dict)  # (device, inode) -> (folder, class) read: a link read twice is one
    skip: set = field(default_factory=set)  # folders never read (the cache, when --data_dir is inside)
    split_folders: dict[str, Path] = field(default_factory=dict)
    holders: dict = field(default_factory=dict)  # (device, inode) -> the root or a split folder


def find_pictures(root: Path, one_class_ok: bool = False, skip: tuple[Path, ...] = ()) -> Found:
    """The folder's classes and pictures, each split's; a one-line error when there is nothing to train on.
    Folders in ``skip`` are never read."""
    if not root.is_dir():
        raise UserError(f"folder:{root}: no such folder" if not root.exists() else f"folder:{root}: not a folder")
    parts = split_folders(root)
    skipped = {(s.stat().st_dev, s.stat().st_ino) for s in skip if s.is_dir()}
    classes = class_folders(parts.get("train", root), skipped)
    found = Found(root, classes, {}, valid_folder=parts.get("valid"), skip=skipped, split_folders=parts)
    # The root and the split folders hold the classes: a link back to one of them inside a class
    # would read the other classes' pictures as this one's.
    found.holders = {_inode(folder): folder for folder in (root, *parts.values())}
    for split, folder in parts.items():
        names = matched_classes(folder, classes, parts.get("train", root), skipped)
        found.splits[split] = [(rel, index) for index, name in enumerate(names) if name is not None
                               for rel in _pictures(found, folder / name, index)]
    _check_classes(found, one_class_ok)
    return found


def _inode(path: Path | str) -> tuple[int, int]:
    status = os.stat(path)
    return status.st_dev, status.st_ino


def split_folders(root: Path, source: str = "folder", things: str = "pictures") -> dict[str, Path]:
    """``train/`` (required once any split folder exists), ``test/`` and ``valid/`` where they exist, each
    under any name of ``SPLIT_FOLDERS`` in any case; else the whole folder, split later. ``source`` and
    ``things`` name them in messages (texts)."""
    try:
        folders = sorted(e.name for e in os.scandir(root) if _is_dir(e))
    except OSError as e:
        raise UserError(f"{source}:{root}: cannot be read ({e.strerror})") from None
    present = {}
    for split, names in SPLIT_FOLDERS.items():
        matches = [name for name in folders if name.lower() in names]
        if len(matches) > 1:
            raise UserError(f"{source}:{root}: has both {matches[0]}/ and {matches[1]}/, two {split} splits; "
                            "keep one (merge or rename the other)")
        present[split] = root / matches[0] if matches else None
    if not any(present.values()):
        return {"all": root}
    if present["train"] is None:
        named = next(folder for folder in present.values() if folder is not None)
        raise UserError(f"{source}:{root}: has {named.name}/ but no train/; with split folders, the training "
                        f"{things} go in train/ (a folder per class inside)")
    return {split: folder for split, folder in present.items() if folder is not None}


def class_folders(folder: Path, skip: set, required: bool = True, example: str = "1.jpg") -> list[str]:
    """The class folders in ``folder`` (``skip``: (device, inode) of folders never read); ``example``: a
    file name, for the message when there are none."""
    try:
        names = sorted(e.name for e in os.scandir(folder) if _is_dir(e) and not e.name.startswith(".")
                       and (e.stat().st_dev, e.stat().st_ino) not in skip)
    except OSError as e:
        raise UserError(f"{folder}: cannot be read ({e.strerror})") from None
    if required and not names:
        things = "pictures" if example.endswith(".jpg") else "files"
        raise UserError(f"{folder}: no class folders; put each class's {things} in a folder of its own "
                        f"({folder / 'cat' / example}, {folder / 'dog' / ('2' + Path(example).suffix)})")
    shown = Counter(map(printable, names))
    twice = next((name for name in names if shown[printable(name)] > 1), None)
    if twice is not None:
        raise UserError(f"{folder}: two class folders are both named {printable(twice)!r} (their accents or bytes "
                        "are written differently); rename one")
    return names


def matched_classes(folder: Path, classes: list[str], train: Path, skip: set) -> list[str | None]:
    """For each of ``classes`` (the training split's folders), this split's folder of that class, or None;
    names matched as shown (``errors.printable``), so ``café`` in NFC and in NFD are one class."""
    if folder == train:
        return list(classes)
    here = {printable(name): name for name in class_folders(folder, skip, required=False)}
    extra = sorted(set(here) - {printable(name) for name in classes})
    if extra:
        raise UserError(f"{folder / extra[0]}: a class folder that {train} does not have; each split must use "
                        "the training split's classes")
    return [here.get(printable(name)) for name in classes]


def _pictures(found: Found, folder: Path, label: int) -> list[str]:
    """The pictures under a class folder (its subfolders too, following links), relative to the root, each
    file's stamp noted. Plain ``os`` calls: a folder of 100,000 pictures is listed in well under a second."""
    pictures, stack = [], [(str(folder), os.path.relpath(folder, found.root))]
    while stack:
        current, relative = stack.pop()
        try:
            status = os.stat(current)
            entries = sorted(os.scandir(current), key=lambda e: e.name)
        except OSError as e:  # a link loop (ELOOP) or a folder that cannot be opened
            found.notes.append(f"{current}: skipped, cannot be read ({e.strerror or e})")
            continue
        inode = (status.st_dev, status.st_ino)
        if inode in found.skip or _skipped_link(found, current, inode, label):
            continue
        found.seen[inode] = (current, label)
        for entry in entries:
            name = f"{relative}/{entry.name}"
            if _is_dir(entry):
                if not entry.name.startswith("."):
                    stack.append((entry.path, name))
            elif os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES and not entry.name.startswith("."):
                stamp = _picture_stamp(found, entry)
                if stamp is not None:
                    found.stamps[name] = stamp
                    pictures.append(name)
            else:
                found.ignored += 1
    return sorted(pictures)


def _skipped_link(found: Found, current: str, inode: tuple[int, int], label: int) -> bool:
    """Whether ``current`` is a folder read already (a link to it, or a link loop) or one that holds the
    class folders (a link back to the root): noted once, said again if its class ends up empty."""
    if inode in found.holders:
        found.notes.append(f"{current}: skipped, a link back to {found.holders[inode]}, which holds the class "
                           "folders")
    elif inode in found.seen:
        first, first_label = found.seen[inode]
        whose = "this class" if first_label == label else f"class {printable(found.classes[first_label])!r}"
        found.notes.append(f"{current}: skipped, a link to {first}, already read as {whose}")
    else:
        return False
    return True


def _picture_stamp(found: Found, entry: os.DirEntry) -> image_cache.Stamp | None:
    """A picture's size and mtime, or None (noted) for a link to nowhere or a file that is not a file."""
    try:
        stat = entry.stat()
    except OSError as e:  # a link to nowhere
        found.notes.append(f"{entry.path}: skipped, cannot be read ({e.strerror or e})")
        return None
    if not S_ISREG(stat.st_mode):  # a FIFO named x.jpg would block the reader forever
        found.notes.append(f"{entry.path}: skipped, not a regular file")
        return None
    return image_cache.Stamp(stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:  # a link loop reports itself on stat
        return False


def _check_classes(found: Found, one_class_ok: bool = False) -> None:
    for split in ("test", "valid"):
        if split in found.splits and not found.splits[split]:
            raise UserError(f"{found.split_folders[split]}: no pictures in this split; add some or remove the folder")
    pictures = found.splits.get("train", found.splits.get("all"))
    counts = Counter(index for _, index in pictures)
    if not pictures and not any(found.splits.values()):
        raise UserError(f"folder:{found.root}: no pictures found ({', '.join(sorted(IMAGE_SUFFIXES))})")
    empty = [name for index, name in enumerate(found.classes) if not counts[index]]
    if empty:
        where = found.split_folders.get("train", found.root) / empty[0]
        link = next((note for note in found.notes if note.startswith(f"{where}: skipped, a link")), None)
        if link:
            raise UserError(f"{where}: no pictures of its own; {link.split(': skipped, ', 1)[1]}; give each class "
                            "its own pictures (copy them, or remove the link)")
        raise UserError(f"{where}: no pictures in this class folder; add some or remove the folder")
    if len(found.classes) < 2 and not one_class_ok:
        raise UserError(f"folder:{found.root}: only one class ({printable(found.classes[0])}); a classifier needs "
                        "two or more class folders")


@dataclass
class Pictures:
    """Every split's pictures, decoded: the cache's rows, and what became of each file."""

    found: Found
    cache: image_cache.Pixels
    headers: dict[str, list]
    unreadable: dict[str, str]  # file -> why
    pruned: list[str] = field(default_factory=list)  # the caches of other shapes removed, a line each


def hashed_order(names: list[str]) -> list[str]:
    """A fixed order that mixes the classes: a block of neighbouring rows holds a sample of all."""
    return sorted(names, key=lambda n: hashlib.blake2b(os.fsencode(n), digest_size=8).digest())


def decode_folder(found: Found, data_dir: str, image_size: int | None, resize: str, strict: bool,
                  channels: int | None = None) -> Pictures:
    """Every picture's header and pixels, from the cache where the file is unchanged. New files are read
    once: their headers and pixels together, at the shape a sample of their headers predicts (decoded
    again only if the whole folder's headers decide otherwise)."""
    cache = image_cache.cache_folder(data_dir, found.root.resolve())
    with image_cache.building(cache):
        pictures = _decode(found, cache, image_size, resize, strict, channels)
        pictures.pruned = image_cache.prune(cache, pictures.cache)
    return pictures


def _decode(found: Found, cache: Path, image_size: int | None, resize: str, strict: bool,
            channels: int | None) -> Pictures:
    files = {rel: found.stamps[rel] for split in found.splits.values() for rel, _ in split}
    headers = image_cache.known_headers(files, cache)
    new = hashed_order([rel for rel in files if rel not in headers])  # the cache's order: often no copy later
    staged = None
    if new:
        sample = {rel: image_cache.read_header(str(found.root / rel))
                  for rel in random.Random(0).sample(new, min(len(new), SAMPLE))}
        readable = {rel: h for rel, h in {**headers, **sample}.items() if h[0] is not None}
        # With no readable header to go by, a guess: the final shape decides whether it is decoded again.
        guess = choose_shape(readable, image_size, channels) if readable else (channels or 3, image_size or 32,
                                                                                  image_size or 32)
        fresh, staged = image_cache.decode_new(found.root, new, guess, resize, cache)
        headers.update(fresh)
        image_cache.save_headers(files, headers, cache)
    unreadable = {rel: header[1] for rel, header in headers.items() if header[0] is None}
    try:
        _refuse_if_strict(found, unreadable, strict)
        if len(unreadable) == len(files):
            raise UserError(f"folder:{found.root}: none of its {len(files)} pictures can be read")
        shape = choose_shape(headers, image_size, channels)
        readable = [rel for rel in files if rel not in unreadable]
        pixels = image_cache.build_pixels(found.root, files, hashed_order(readable), shape, resize, cache, staged)
    finally:
        if staged is not None:
            staged.path.unlink(missing_ok=True)
    unreadable.update(pixels.failed)
    _refuse_if_strict(found, unreadable, strict)
    return Pictures(found, pixels, headers, unreadable)


def choose_shape(headers: dict[str, list], image_size: int | None, channels: int | None) -> tuple[int, int, int]:
    """(C, S, S): 3 channels if any readable picture has colour, 1 if none; S the --image_size or the
    median short side, within ``AUTO_SIDE``."""
    readable = [header for header in headers.values() if header[0] is not None]
    if not readable:
        raise UserError(f"none of the {len(headers)} pictures can be read")
    channels = channels or (3 if any(header[2] for header in readable) else 1)
    median = statistics.median(min(width, height) for width, height, _ in readable)
    side = image_size or int(min(max(round(median), AUTO_SIDE[0]), AUTO_SIDE[1]))
    return channels, side, side


def _refuse_if_strict(found: Found, unreadable: dict[str, str], strict: bool) -> None:
    if strict and found.notes:
        raise UserError(f"{found.notes[0]}; --strict refuses a folder with anything unreadable")
    if strict and unreadable:
        rel, why = next(iter(sorted(unreadable.items())))
        raise UserError(f"{found.root / rel}: cannot be read ({why}); --strict refuses a folder with "
                        "unreadable pictures (without it they are skipped)")


def load_folder(root: Path, data_dir: str = "data", image_size: int | None = None, resize: str = CROP,
                strict: bool = False, channels: int | None = None, holdout: bool = False, **_) -> Dataset:
    """The folder's pictures as a ``Dataset`` of uint8 (N, C, S, S) rows (read from disk when large).
    ``channels`` None: from the pictures. ``holdout``: a folder without splits is all test rows (to
    judge a model on), not split."""
    found = find_pictures(root, one_class_ok=holdout, skip=(Path(data_dir) / "folder-cache",))
    pictures = decode_folder(found, data_dir, image_size, resize, strict, channels)
    _check_decoded(pictures, one_class_ok=holdout)
    rows = pictures.cache.load(int(available_memory() * MEMORY_SHARE))
    position = {rel: i for i, rel in enumerate(pictures.cache.rows)}
    parts = {split: _take(rows, position, members) for split, members in found.splits.items()}
    if "all" in parts:
        whole = parts.pop("all")
        none = (take_rows(whole[0], torch.zeros(0, dtype=torch.long)), whole[1][:0])
        parts["train"], parts["test"] = (none, whole) if holdout else _split(*whole)
    elif "test" not in parts:  # train/ (and valid/) only: the test rows come from train/, as for a plain folder
        parts["train"], parts["test"] = _split(*parts["train"])
    shape = pictures.cache.shape
    dataset = Dataset(f"folder {root.name}", parts["train"], parts["test"], CLASSIFICATION, shape,
                      [printable(name) for name in found.classes], valid=parts.get("valid"))
    dataset.found, dataset.notes = describe(pictures, dataset), _notes(pictures)
    dataset.skipped = len(pictures.unreadable)
    return dataset


def _check_decoded(pictures: Pictures, one_class_ok: bool) -> None:
    """Every class still has pictures once the unreadable ones are gone."""
    found = pictures.found
    decoded = set(pictures.cache.rows)
    training = found.splits.get("train", found.splits.get("all"))
    counts = Counter(label for rel, label in training if rel in decoded)
    lost = [printable(name) for index, name in enumerate(found.classes) if not counts[index]]
    if lost and not one_class_ok:
        raise UserError(f"folder:{found.root}: none of the training pictures of class {lost[0]!r} can be read "
                        f"({len(pictures.unreadable)} unreadable in all)")


def _take(rows, position: dict[str, int], members: list[tuple[str, int]]) -> tuple:
    """The rows and labels of a split's pictures that were decoded, in the cache's order."""
    kept = sorted((position[rel], label) for rel, label in members if rel in position)
    index = torch.tensor([i for i, _ in kept], dtype=torch.long)
    labels = torch.tensor([label for _, label in kept], dtype=torch.long)
    return take_rows(rows, index), labels


def _split(x, y) -> tuple:
    """A seeded, stratified test split of the rows (indices only: a cache read from disk is never copied)."""
    counts = torch.bincount(y)
    stratify = bool((counts[counts > 0] >= 2).all())
    (train_index, y_train), (test_index, y_test) = split_test(torch.arange(len(y)), y, stratify=stratify)
    return (take_rows(x, train_index), y_train), (take_rows(x, test_index), y_test)


def describe(pictures: Pictures, dataset: Dataset) -> str:
    """The first line: 'folder photos: 2 classes (cat 1,204, dog 1,187), RGB, sizes 240-4032 px -> 64x64;
    3 files ignored, 1 unreadable (photos/dog/x.jpg)'."""
    found, (channels, side, _) = pictures.found, pictures.cache.shape
    counts = Counter(label for split in found.splits.values() for rel, label in split
                     if rel not in pictures.unreadable)
    shown = ", ".join(f"{printable(name)} {counts[i]:,}" for i, name in enumerate(found.classes[:6]))
    shown += ", ..." if len(found.classes) > 6 else ""
    sides = [v for rel in pictures.cache.rows for v in pictures.headers[rel][:2]]
    sizes = f"{min(sides)}-{max(sides)} px" if min(sides) != max(sides) else f"{min(sides)} px"
    colour = "RGB" if channels == 3 else "grayscale"
    line = f"folder {found.root.name}: {len(found.classes)} classes ({shown}), {colour}, sizes {sizes} -> {side}x{side}"
    tail = [f"{found.ignored:,} files ignored"] if found.ignored else []
    if pictures.unreadable:
        more = ", ..." if len(pictures.unreadable) > 1 else ""
        tail.append(f"{len(pictures.unreadable):,} unreadable ({found.root / sorted(pictures.unreadable)[0]}{more})")
    if found.valid_folder is not None:
        tail.append(f"validation from {found.valid_folder}")
    return line + ("; " + ", ".join(tail) if tail else "")


def _notes(pictures: Pictures) -> list[str]:
    """One line per file or folder skipped."""
    skipped = [f"skipped {pictures.found.root / rel}: {why}" for rel, why in sorted(pictures.unreadable.items())]
    return [*pictures.found.notes, *skipped, *pictures.pruned]
