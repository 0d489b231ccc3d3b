"""Decode each picture of a folder once, into a uint8 cache that later epochs and runs index.

A cache is a folder under ``--data_dir`` (``folder-cache/NAME-HASH/``) holding:

- ``headers.json``: each file's size, modification time, width, height and colour, so a run with
  a warm cache never opens a picture to learn what the folder holds;
- ``pixels-C-S-RESIZE.u8``: the pictures prepared by ``pictures.fit_picture`` as uint8
  (N, C, S, S), with ``pixels-C-S-RESIZE.json`` naming each row's file (path, size, mtime).

Both are keyed by the files' paths, sizes and modification times: a changed, added or removed
file is decoded again, every other row is copied from the old cache. Decoding runs in a process
per core, with a progress bar. A cache that would not fit in the memory the run may use is read
through a memory map (``MappedRows``), in shuffled blocks.
"""

from __future__ import annotations

import functools
import hashlib
import json
import mmap
import multiprocessing
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..errors import UserError, first_line
from ..files import atomic_write
from .images import open_image
from .pictures import fit_picture, is_colour

CACHE_VERSION = 1
CHUNK = 256  # files per task sent to a decoding process: large enough to hide the messaging
# A memory-mapped cache is read in blocks of this many bytes, their order shuffled every epoch.
BLOCK_BYTES = 64 * 2**20


@dataclass(frozen=True)
class Stamp:
    """What identifies a file's content without reading it."""

    size: int
    mtime_ns: int


def stamp(path: Path) -> Stamp:
    status = path.stat()
    return Stamp(status.st_size, status.st_mtime_ns)


# ---- headers: what each picture is, without decoding it ----------------------------------------------

def read_header(path: str) -> list:
    """[width, height, colour] of a picture, or [None, why] when it cannot be read."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return [image.width, image.height, is_colour(image)]
    except UnidentifiedImageError:
        return [None, "not a picture Pillow can read"]
    except Exception as e:  # noqa: BLE001 - any failure to read a file makes it unreadable, named
        return [None, first_line(e)[:200]]


def headers(root: Path, files: dict[str, Stamp], cache: Path) -> dict[str, list]:
    """Each file's header, from ``headers.json`` where its stamp still matches, else read (in parallel)."""
    saved = _read_json(cache / "headers.json") or {}
    known = {rel: entry[2:] for rel, entry in saved.get("files", {}).items()
             if rel in files and entry[:2] == [files[rel].size, files[rel].mtime_ns]}
    missing = [rel for rel in files if rel not in known]
    if missing:
        paths = [str(root / rel) for rel in missing]
        for rel, header in zip(missing, _parallel(_header_chunk, paths, "reading"), strict=True):
            known[rel] = header
        entries = {rel: [files[rel].size, files[rel].mtime_ns, *known[rel]] for rel in files}
        _write_json(cache / "headers.json", {"version": CACHE_VERSION, "files": entries})
    return known


# ---- pixels: each picture decoded and resized once ---------------------------------------------------

def decode_one(path: str, side: int, channels: int, resize: str) -> np.ndarray | str:
    """A picture as uint8 (C, side, side), or why it could not be decoded."""
    try:
        with open_image(path, working_side=max(4 * side, 256)) as image:
            return fit_picture(image, side, channels, resize, name=path)
    except Exception as e:  # noqa: BLE001 - a file that cannot be decoded is skipped and named
        return first_line(e)[:200]


def _decode_chunk(paths: list[str], side: int, channels: int, resize: str) -> list:
    return [decode_one(path, side, channels, resize) for path in paths]


@dataclass
class Pixels:
    """A built cache: its file, the rows' file names in order, and the files that could not be decoded."""

    path: Path
    shape: tuple[int, int, int]
    rows: list[str]
    failed: dict[str, str]
    decoded: int  # how many pictures this build decoded (0 when the cache was warm)

    def load(self, memory_budget: int) -> torch.Tensor | MappedRows:
        """All rows: a uint8 tensor in memory when it fits ``memory_budget`` bytes, else a memory map."""
        n_bytes = len(self.rows) * int(np.prod(self.shape))
        if n_bytes <= memory_budget:
            array = np.fromfile(self.path, dtype=np.uint8).reshape(len(self.rows), *self.shape)
            return torch.from_numpy(array)
        return MappedRows.open(self.path, len(self.rows), self.shape)


def pixels_name(shape: tuple[int, int, int], resize: str) -> str:
    channels, side, _ = shape
    return f"pixels-{channels}-{side}-{resize}"


def build_pixels(root: Path, files: dict[str, Stamp], order: list[str], shape: tuple[int, int, int],
                 resize: str, cache: Path) -> Pixels:
    """The cache of ``order``'s files at ``shape``: rows whose file is unchanged are copied from the
    last build, the rest decoded."""
    base = cache / pixels_name(shape, resize)
    index, data = base.with_suffix(".json"), base.with_suffix(".u8")
    old = _old_rows(index, data, shape, files)
    failed = {rel: why for rel, why in ((_read_json(index) or {}).get("failed") or {}).items()
              if rel in files and rel not in old and _same_stamp(why, files[rel])}
    failed = {rel: why[2] for rel, why in failed.items()}
    wanted = [rel for rel in order if rel not in failed]
    todo = [rel for rel in wanted if rel not in old]
    if not todo and (_read_json(index) or {}).get("rows") == [_entry(rel, files) for rel in wanted]:
        return Pixels(data, shape, wanted, failed, 0)
    rows, newly_failed = _write_pixels(root, data, wanted, old, todo, shape, resize)
    failed.update(newly_failed)
    entries = {rel: [files[rel].size, files[rel].mtime_ns, why] for rel, why in failed.items()}
    _write_json(index, {"version": CACHE_VERSION, "shape": list(shape), "rows": [_entry(r, files) for r in rows],
                        "failed": entries})
    return Pixels(data, shape, rows, failed, len(todo))


def _entry(rel: str, files: dict[str, Stamp]) -> list:
    return [rel, files[rel].size, files[rel].mtime_ns]


def _same_stamp(entry, now: Stamp) -> bool:
    return isinstance(entry, list) and len(entry) == 3 and entry[:2] == [now.size, now.mtime_ns]


def _old_rows(index: Path, data: Path, shape: tuple[int, ...], files: dict[str, Stamp]) -> dict[str, int]:
    """Row number in the last build of each file whose stamp is unchanged."""
    saved = _read_json(index)
    row_bytes = int(np.prod(shape))
    if not saved or saved.get("shape") != list(shape) or not data.exists():
        return {}
    rows = saved.get("rows") or []
    if data.stat().st_size != len(rows) * row_bytes:
        return {}  # a torn or foreign file: decode everything again
    return {entry[0]: i for i, entry in enumerate(rows)
            if entry[0] in files and entry[1:] == [files[entry[0]].size, files[entry[0]].mtime_ns]}


def _write_pixels(root: Path, data: Path, wanted: list[str], old: dict[str, int], todo: list[str],
                  shape: tuple[int, ...], resize: str) -> tuple[list[str], dict[str, str]]:
    """Stream the rows of ``wanted`` into a new cache file: old rows copied, ``todo`` decoded in order."""
    previous = np.memmap(data, dtype=np.uint8, mode="r") if old else None
    row_bytes = int(np.prod(shape))
    decode = functools.partial(_decode_chunk, side=shape[1], channels=shape[0], resize=resize)
    decoded = _parallel(decode, [str(root / rel) for rel in todo], "decoding")
    rows, failed = [], {}

    def write(f) -> None:
        for rel in wanted:
            if rel in old:
                f.write(previous[old[rel] * row_bytes:(old[rel] + 1) * row_bytes].tobytes())
                rows.append(rel)
                continue
            result = next(decoded)
            if isinstance(result, str):
                failed[rel] = result
            else:
                f.write(result.tobytes())
                rows.append(rel)

    try:
        atomic_write(data, write)
    finally:
        decoded.close()  # stops the decoding processes if the write failed half-way
    return rows, failed


def _parallel(chunk_function, items: list, what: str) -> Iterator:
    """``chunk_function`` over ``items`` in chunks, results in order, in a process per core when there is
    enough work, with a progress bar on a terminal."""
    bar = tqdm(total=len(items), desc=f"{what} pictures", unit="img", leave=False, disable=not sys.stderr.isatty())
    workers = min(os.cpu_count() or 1, max(len(items) // CHUNK, 1))
    chunks = [items[i:i + CHUNK] for i in range(0, len(items), CHUNK)]
    if workers <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        yield from _counted(map(chunk_function, chunks), bar)
        return
    # fork, as DataLoader workers do: the children run only Pillow and numpy, nothing of torch.
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        yield from _counted(pool.imap(chunk_function, chunks), bar)


def _header_chunk(paths: list[str]) -> list:
    return [read_header(path) for path in paths]


def _counted(results: Iterator[list], bar) -> Iterator:
    try:
        for chunk in results:
            bar.update(len(chunk))
            yield from chunk
    finally:
        bar.close()


def _read_json(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) and value.get("version") == CACHE_VERSION else None


def _write_json(path: Path, value: dict) -> None:
    atomic_write(path, lambda f: f.write(json.dumps(value).encode()))


def cache_folder(data_dir: str, root: Path) -> Path:
    """Where the cache of the folder ``root`` lives: under ``data_dir``, named after the folder."""
    key = hashlib.blake2b(str(root).encode(), digest_size=6).hexdigest()
    folder = Path(data_dir) / "folder-cache" / f"{root.name or 'root'}-{key}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"--data_dir {data_dir}: cannot hold the picture cache ({e.strerror}); give a writable "
                        "--data_dir") from None
    return folder


# ---- a cache larger than memory --------------------------------------------------------------------

class MappedRows:
    """Rows of a uint8 cache file read through a memory map: the tensor-like view the trainer indexes.

    ``rows`` are this view's rows of the file (a split's). ``epoch_order`` shuffles blocks of
    neighbouring rows, then the rows within each block, so every batch reads one region of the file;
    the cache's rows are in a hashed order of the file names, so a block holds a mix of classes.
    Pages read are handed back to the system as each block is done: resident memory stays near
    one block however large the file.
    """

    def __init__(self, buffer: mmap.mmap, n_rows: int, shape: tuple[int, ...], rows: torch.Tensor, key: str):
        self._mmap, self.shape_of_row, self.rows, self.key = buffer, tuple(shape), rows, key
        self._array = np.frombuffer(buffer, dtype=np.uint8).reshape(n_rows, *shape)
        self._read_since_release = 0

    @classmethod
    def open(cls, path: Path, n_rows: int, shape: tuple[int, ...]) -> MappedRows:
        with open(path, "rb") as f:
            buffer = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        key = f"{path}:{path.stat().st_size}:{path.stat().st_mtime_ns}"
        return cls(buffer, n_rows, shape, torch.arange(n_rows), key)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.rows), *self.shape_of_row)

    dtype = torch.uint8
    device = torch.device("cpu")

    def subset(self, positions: torch.Tensor) -> MappedRows:
        """A view of some of these rows (a split), sharing the map."""
        view = MappedRows.__new__(MappedRows)
        view.__dict__.update(self.__dict__)
        view.rows = self.rows[positions]
        return view

    def to(self, device) -> MappedRows:
        return self  # stays on the host: batches move to the device one at a time

    def __getitem__(self, positions: torch.Tensor) -> torch.Tensor:
        """The rows at ``positions`` of this view, read from the file as a uint8 tensor."""
        rows = self.rows[positions].numpy()
        ascending = np.argsort(rows, kind="stable")  # read front to back: the kernel reads ahead
        batch = torch.empty((len(rows), *self.shape_of_row), dtype=torch.uint8)
        batch.numpy()[ascending] = self._array[rows[ascending]]
        self._read_since_release += batch.numel()
        if self._read_since_release >= BLOCK_BYTES:
            self._mmap.madvise(mmap.MADV_DONTNEED)  # pages stay in the page cache, not in this process
            self._read_since_release = 0
        return batch

    def split(self, size: int) -> Iterator[torch.Tensor]:
        """Consecutive batches of at most ``size`` rows, in this view's order (for evaluation)."""
        for start in range(0, len(self), size):
            yield self[torch.arange(start, min(start + size, len(self)))]

    def epoch_order(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """Positions of this view's rows for one epoch: blocks of neighbouring file rows in a random
        order, each block's rows shuffled."""
        by_file_row = torch.argsort(self.rows)
        block = max(BLOCK_BYTES // int(np.prod(self.shape_of_row)), 1)
        blocks = list(by_file_row.split(block))
        order = torch.randperm(len(blocks), generator=generator)
        return torch.cat([blocks[i][torch.randperm(len(blocks[i]), generator=generator)] for i in order.tolist()])

    def digest(self) -> str:
        """What the rows are, cheaply: the cache file's identity and this view's rows."""
        return hashlib.blake2b(f"{self.key}:{self.rows.numpy().tobytes().hex()}".encode(), digest_size=16).hexdigest()
