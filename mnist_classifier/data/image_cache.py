"""Decode each picture of a folder once, into a uint8 cache that later epochs and runs index.

A cache is a folder under ``--data_dir`` (``folder-cache/NAME-HASH/``) holding:

- ``headers.json``: each file's size, modification time, width, height and colour, so a run with
  a warm cache never opens a picture to learn what the folder holds;
- ``pixels-C-S-RESIZE.u8``: the pictures prepared by ``pictures.fit_picture`` as uint8
  (N, C, S, S), with ``pixels-C-S-RESIZE.json`` naming each row's file (path, size, mtime).

Both are keyed by the files' paths, sizes, modification times and change times: a changed, added or
removed file is decoded again, every other row is copied from the old cache. The change time (ctime)
is what no tool can set: a picture replaced by one of the same size and mtime (``cp -p``,
``rsync -t``, tar, unzip) still has a new one. A lock keeps two runs from building one cache at once,
and a folder keeps the pixels of its ``KEEP_SHAPES`` latest shapes (``--image_size``, ``--resize``).
Decoding runs in a process per core, with a progress bar. A cache that would not fit in the memory
the run may use is read from the file in shuffled blocks (``FileRows``).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import multiprocessing
import os
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import filelock
import numpy as np
import torch
from tqdm import tqdm

from ..errors import UserError, first_line
from ..files import atomic_write
from . import pictures
from .images import shrunk
from .pictures import fit_picture, is_colour

CACHE_VERSION = 3  # 3: the change time in every stamp
CHUNK = 256  # files per task sent to a decoding process: large enough to hide the messaging
# A cache too large for memory is read in blocks of this many bytes, their order shuffled every epoch.
BLOCK_BYTES = 64 * 2**20


@dataclass(frozen=True)
class Stamp:
    """What identifies a file's content without reading it."""

    size: int
    mtime_ns: int
    ctime_ns: int = 0  # changed by any write and by no tool that copies stamps: a file replaced in place


# ---- headers: what each picture is, without decoding it ----------------------------------------------

def read_header(path: str) -> list:
    """[width, height, colour] of a picture, or [None, why] when it cannot be read."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return [image.width, image.height, is_colour(image)]
    except Exception as e:  # noqa: BLE001 - any failure to read a file makes it unreadable, named
        return [None, _why(e)]


def _why(error: Exception) -> str:
    from PIL import UnidentifiedImageError

    return "not a picture Pillow can read" if isinstance(error, UnidentifiedImageError) else first_line(error)[:200]


HEADER_COLUMNS = ("size", "mtime", "ctime", "width", "height", "colour")
STAMP_COLUMNS = HEADER_COLUMNS[:3]


def known_headers(files: dict[str, Stamp], cache: Path) -> dict[str, list]:
    """The headers ``headers.json`` holds for files whose stamp still matches: [width, height, colour].
    Files that could not be read are not kept: they are tried again on every run (a permission fixed,
    a plugin installed), and there are few."""
    saved = _read_json(cache / "headers.json")
    if not saved:
        return {}
    known = {}
    for name, size, mtime, ctime, width, height, colour in zip(
            saved["names"], *(saved[c] for c in HEADER_COLUMNS), strict=True):
        if files.get(name) == Stamp(size, mtime, ctime):
            known[name] = [width, height, colour]
    return known


def save_headers(files: dict[str, Stamp], headers: dict[str, list], cache: Path) -> None:
    names = [name for name in files if headers[name][0] is not None]
    columns = {**stamp_columns(files, names),
               **{c: [headers[n][i] if i < len(headers[n]) else None for n in names]
                  for i, c in enumerate(HEADER_COLUMNS[3:])}}
    _write_json(cache / "headers.json", {"version": CACHE_VERSION, "names": names, **columns})


def stamp_columns(files: dict[str, Stamp], names: list[str]) -> dict[str, list[int]]:
    """The stamps of ``names`` as the columns a cache's JSON keeps."""
    return {"size": [files[n].size for n in names], "mtime": [files[n].mtime_ns for n in names],
            "ctime": [files[n].ctime_ns for n in names]}


# ---- pixels: each picture decoded and resized once ---------------------------------------------------

def decode_one(path: str, side: int, channels: int, resize: str) -> tuple[list, np.ndarray | str | None]:
    """A picture's header ([width, height, colour] or [None, why]) and its pixels as uint8 (C, side,
    side), or why they could not be decoded: one opening of the file for both."""
    from PIL import Image

    working_side = pictures.working_side(side)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # shrunk as soon as decoded
            with Image.open(path) as image:
                header = [image.width, image.height, is_colour(image)]
                try:
                    image.draft(image.mode, (working_side, working_side))  # JPEG: decode at a fraction of the size
                    image.load()
                    return header, fit_picture(shrunk(image, working_side), side, channels, resize, name=path)
                except Exception as e:  # noqa: BLE001 - a file that cannot be decoded is skipped and named
                    return header, _why(e)
    except Exception as e:  # noqa: BLE001 - nor can one that cannot be opened
        return [None, _why(e)], None


def _decode_chunk(paths: list[str], side: int, channels: int, resize: str) -> tuple[list, bytes]:
    """Each picture's header and status (True: decoded; or why not), and the decoded rows as one block of
    bytes: one message per chunk, not an array per picture, so the decoding processes are not held up
    by the messaging."""
    results = [decode_one(path, side, channels, resize) for path in paths]
    statuses = [(header, True if isinstance(pixels, np.ndarray) else pixels) for header, pixels in results]
    return statuses, b"".join(pixels.tobytes() for _, pixels in results if isinstance(pixels, np.ndarray))


@dataclass
class Rows:
    """Decoded rows in a file: where each named picture is, and what could not be decoded."""

    path: Path
    shape: tuple[int, int, int]
    index: dict[str, int]
    failed: dict[str, str]

    def array(self) -> np.ndarray | None:
        return np.memmap(self.path, dtype=np.uint8, mode="r") if self.index else None


def decode_new(root: Path, names: list[str], shape: tuple[int, int, int], resize: str, cache: Path
               ) -> tuple[dict[str, list], Rows]:
    """Read and decode ``names`` (files the cache does not know) in one pass, at ``shape``: their headers,
    and their pixels in a staging file, rows in the order of ``names``."""
    decode = functools.partial(_decode_chunk, side=shape[1], channels=shape[0], resize=resize)
    staging = cache / f"{pixels_name(shape, resize)}.new-{os.getpid()}.u8"  # a run of its own: never another's
    headers, index, failed = {}, {}, {}

    def write(f) -> None:
        for name, (header, pixels) in zip(names, _parallel(decode, [str(root / n) for n in names], "reading"),
                                          strict=True):
            headers[name] = header
            if isinstance(pixels, memoryview):
                index[name] = len(index)
                f.write(pixels)
            elif pixels is not None:
                failed[name] = pixels

    atomic_write(staging, write)
    return headers, Rows(staging, shape, index, failed)


@dataclass
class Pixels:
    """A built cache: its file, the rows' file names in order, and the files that could not be decoded."""

    path: Path
    shape: tuple[int, int, int]
    rows: list[str]
    failed: dict[str, str]
    decoded: int  # how many pictures this build decoded (0 when the cache was warm)

    stamp: list[int]  # the data file's size and mtime when its index was written

    def load(self, memory_budget: int) -> torch.Tensor | FileRows:
        """All rows: a uint8 tensor in memory when it fits ``memory_budget`` bytes, else read from the file."""
        if _file_stamp(self.path) != self.stamp:
            raise UserError(f"{self.path}: the picture cache was rebuilt by another run while this one read it; "
                            "run again")
        n_bytes = len(self.rows) * int(np.prod(self.shape))
        if n_bytes <= memory_budget:
            array = np.fromfile(self.path, dtype=np.uint8).reshape(len(self.rows), *self.shape)
            return torch.from_numpy(array)
        return FileRows.open(self.path, len(self.rows), self.shape)


def pixels_name(shape: tuple[int, int, int], resize: str) -> str:
    channels, side, _ = shape
    return f"pixels-{channels}-{side}-{resize}"


def build_pixels(root: Path, files: dict[str, Stamp], order: list[str], shape: tuple[int, int, int],
                 resize: str, cache: Path, staged: Rows | None = None) -> Pixels:
    """The cache of ``order``'s files at ``shape``: rows whose file is unchanged are copied from the
    last build or from ``staged`` (just decoded at this shape), the rest decoded."""
    base = cache / pixels_name(shape, resize)
    index, data = base.with_suffix(".json"), base.with_suffix(".u8")
    saved = _read_json(index) or {}
    old = _old_rows(saved, data, shape, files)
    try:
        return _build(root, files, order, shape, resize, data, index, saved, old,
                      staged if staged is not None and staged.shape == shape else Rows(data, shape, {}, {}))
    finally:
        if staged is not None:
            staged.path.unlink(missing_ok=True)


def _build(root: Path, files: dict[str, Stamp], order: list[str], shape: tuple[int, int, int], resize: str,
           data: Path, index: Path, saved: dict, old: Rows, staged: Rows) -> Pixels:
    failed = dict(staged.failed)
    wanted = [name for name in order if name not in failed]
    todo = [name for name in wanted if name not in old.index and name not in staged.index]
    if not todo and not staged.index and saved.get("names") == wanted:
        return Pixels(data, shape, wanted, failed, 0, saved["data"])
    if not todo and list(staged.index) == wanted:  # all new, decoded in this order: the staging file is the cache
        os.replace(staged.path, data)
        rows, newly_failed = wanted, {}
    else:
        rows, newly_failed = _write_pixels(root, data, wanted, (old, staged), todo, shape, resize)
    failed.update(newly_failed)
    # The index names the data file it describes (size, mtime): a data file replaced without its index
    # (a run killed between the two writes, or another run's) is never read with the wrong names.
    stamp = _file_stamp(data)
    _write_json(index, {"version": CACHE_VERSION, "shape": list(shape), "data": stamp, "names": rows,
                        **stamp_columns(files, rows)})
    return Pixels(data, shape, rows, failed, len(todo) + len(staged.index) + len(staged.failed), stamp)


def _file_stamp(path: Path) -> list[int] | None:
    try:
        status = path.stat()
    except OSError:
        return None
    return [status.st_size, status.st_mtime_ns]


def _old_rows(saved: dict, data: Path, shape: tuple[int, ...], files: dict[str, Stamp]) -> Rows:
    """Where the last build holds each file whose stamp is unchanged."""
    row_bytes = int(np.prod(shape))
    names = saved.get("names") or []
    stamp = _file_stamp(data)
    if saved.get("shape") != list(shape) or stamp is None or stamp != saved.get("data") or stamp[0] != len(
            names) * row_bytes:
        return Rows(data, tuple(shape), {}, {})  # none, or a torn or foreign file: decode everything again
    index = {name: i for i, (name, *stamp) in enumerate(zip(names, *(saved[c] for c in STAMP_COLUMNS), strict=True))
             if files.get(name) == Stamp(*stamp)}
    return Rows(data, tuple(shape), index, {})


def _write_pixels(root: Path, data: Path, wanted: list[str], sources: tuple[Rows, ...], todo: list[str],
                  shape: tuple[int, ...], resize: str) -> tuple[list[str], dict[str, str]]:
    """Stream the rows of ``wanted`` into a new cache file: rows the ``sources`` hold are copied, ``todo``
    decoded in order."""
    arrays = [source.array() for source in sources]
    row_bytes = int(np.prod(shape))
    decode = functools.partial(_decode_chunk, side=shape[1], channels=shape[0], resize=resize)
    decoded = _parallel(decode, [str(root / name) for name in todo], "decoding")
    rows, failed = [], {}

    def write(f) -> None:
        for name in wanted:
            source = next((i for i, s in enumerate(sources) if name in s.index), None)
            if source is not None:
                row = sources[source].index[name]
                f.write(arrays[source][row * row_bytes:(row + 1) * row_bytes].tobytes())
                rows.append(name)
                continue
            _, result = next(decoded)
            if isinstance(result, memoryview):
                f.write(result)
                rows.append(name)
            else:
                failed[name] = result or "cannot be read"

    try:
        atomic_write(data, write)
    finally:
        decoded.close()  # stops the decoding processes if the write failed half-way
    return rows, failed


def _parallel(chunk_function, items: list, what: str) -> Iterator:
    """``chunk_function`` (``_decode_chunk``) over ``items`` in chunks, results in order, in a process per
    core when there is enough work, with a progress bar on a terminal."""
    bar = tqdm(total=len(items), desc=f"{what} pictures", unit="img", leave=False, disable=not sys.stderr.isatty())
    workers = min(os.cpu_count() or 1, max(len(items) // CHUNK, 1))
    chunks = [items[i:i + CHUNK] for i in range(0, len(items), CHUNK)]
    if workers <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        yield from _counted(map(chunk_function, chunks), bar)
        return
    # fork, as DataLoader workers do: the children run only Pillow and numpy, nothing of torch.
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        yield from _counted(pool.imap(chunk_function, chunks), bar)


def _counted(results: Iterator[tuple[list, bytes]], bar) -> Iterator:
    """Each picture's (header, its row's bytes or why it has none), chunk by chunk."""
    try:
        for statuses, block in results:
            bar.update(len(statuses))
            rows = memoryview(block)
            row_bytes = len(block) // max(sum(status is True for _, status in statuses), 1)
            for header, status in statuses:
                if status is True:
                    row, rows = rows[:row_bytes], rows[row_bytes:]
                    yield header, row
                else:
                    yield header, status
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


@contextlib.contextmanager
def building(cache: Path):
    """Hold the cache's lock while a run reads and builds it: a second run on the same folder waits
    (saying so) rather than writing the same files at the same time."""
    lock = filelock.FileLock(cache / ".lock")
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        print(f"waiting for another run that is building the picture cache {cache} ...", file=sys.stderr, flush=True)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


# A folder keeps the pixels of this many shapes (--image_size, --resize, channels): the ones used last.
KEEP_SHAPES = 3


def prune(cache: Path, used: Pixels) -> list[str]:
    """Remove the pixels of the shapes used least lately, beyond ``KEEP_SHAPES``; a line for each."""
    os.utime(used.path.with_suffix(".json"))  # used now: the last to go
    indexes = sorted(cache.glob("pixels-*.json"), key=lambda p: p.stat().st_mtime_ns, reverse=True)
    removed = []
    for index in indexes[KEEP_SHAPES:]:
        data = index.with_suffix(".u8")
        size = data.stat().st_size if data.exists() else 0
        data.unlink(missing_ok=True)
        index.unlink(missing_ok=True)
        removed.append(f"removed the picture cache {data.name} ({size / 2**20:,.1f} MB), the least lately used of "
                       f"{len(indexes)} shapes; a folder keeps its {KEEP_SHAPES} latest")
    return removed


def cache_folder(data_dir: str, root: Path) -> Path:
    """Where the cache of the folder ``root`` lives: under ``data_dir``, named after the folder."""
    key = hashlib.blake2b(os.fsencode(root), digest_size=6).hexdigest()
    folder = Path(data_dir) / "folder-cache" / f"{root.name or 'root'}-{key}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"--data_dir {data_dir}: cannot hold the picture cache ({e.strerror}); give a writable "
                        "--data_dir") from None
    return folder


# ---- a cache larger than memory --------------------------------------------------------------------

class FileRows:
    """Rows of a uint8 cache file too large for memory, read from the file: the tensor-like view the
    trainer indexes.

    ``rows`` are this view's rows of the file (a split's). ``epoch_order`` shuffles blocks of
    neighbouring rows, then the rows within each block, so the batches of a block fall in one region
    of the file: that region is read once, in one call, and batches are taken from it; the cache's
    rows are in a hashed order of the file names, so a block holds a mix of classes. Scattered rows
    (evaluation) are read one by one. Resident memory stays near one region however large the file.

    Not a memory map: a page fault reads ahead by the disk's read-ahead, and under a cgroup memory
    limit those pages are dropped before use, so an epoch reads the file many times over
    (docs/results.md#where-the-defaults-come-from).
    """

    def __init__(self, path: Path, n_rows: int, shape: tuple[int, ...], rows: torch.Tensor):
        self.path, self.n_rows, self.shape_of_row, self.rows = path, n_rows, tuple(shape), rows
        self.row_bytes = int(np.prod(shape))
        self._fd = os.open(path, os.O_RDONLY)
        self._region: tuple[int, np.ndarray] = (0, np.zeros((0, *shape), dtype=np.uint8))  # first row, rows

    @classmethod
    def open(cls, path: Path, n_rows: int, shape: tuple[int, ...]) -> FileRows:
        return cls(path, n_rows, shape, torch.arange(n_rows))

    def __del__(self):
        if self.__dict__.get("_owner", True) and hasattr(self, "_fd"):
            os.close(self._fd)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.rows), *self.shape_of_row)

    dtype = torch.uint8
    device = torch.device("cpu")
    from_disk = True  # rows drawn at random (--sampler balanced) would read the file row by row

    def subset(self, positions: torch.Tensor) -> FileRows:
        """A view of some of these rows (a split), sharing the open file."""
        view = FileRows.__new__(FileRows)
        view.__dict__.update(self.__dict__, rows=self.rows[positions], _owner=False, _parent=self)
        return view

    def to(self, device) -> FileRows:
        return self  # stays on the host: batches move to the device one at a time

    @property
    def block_rows(self) -> int:
        return max(BLOCK_BYTES // self.row_bytes, 1)

    def __getitem__(self, positions: torch.Tensor) -> torch.Tensor:
        """The rows at ``positions`` of this view, as a uint8 tensor read from the file."""
        rows = self.rows[positions].numpy()
        if not len(rows):
            return torch.zeros((0, *self.shape_of_row), dtype=torch.uint8)
        low, high = int(rows.min()), int(rows.max()) + 1
        start, region = self._region
        if not (start <= low and high <= start + len(region)):
            if high - low > 2 * self.block_rows:  # scattered rows: each read on its own
                return torch.from_numpy(np.stack([self._read(row, row + 1)[0] for row in rows]))
            # A new block: read it whole, and a block's worth beyond (this view's rows are a subset).
            start = low
            region = self._read(low, max(high, min(low + 2 * self.block_rows, self.n_rows)))
            self._region = (start, region)
        return torch.from_numpy(region[rows - start])

    def _read(self, first: int, end: int) -> np.ndarray:
        size = (end - first) * self.row_bytes
        data = os.pread(self._fd, size, first * self.row_bytes)
        if len(data) != size:
            raise UserError(f"{self.path}: the picture cache is shorter than its index says; delete the folder "
                            f"{self.path.parent} to rebuild it")
        return np.frombuffer(data, dtype=np.uint8).reshape(end - first, *self.shape_of_row)

    def split(self, size: int) -> Iterator[torch.Tensor]:
        """Consecutive batches of at most ``size`` rows, in this view's order (for evaluation)."""
        for start in range(0, len(self), size):
            yield self[torch.arange(start, min(start + size, len(self)))]

    def epoch_order(self, generator: torch.Generator | None = None, batch_size: int | None = None) -> torch.Tensor:
        """Positions of this view's rows for one epoch: blocks of neighbouring file rows in a random
        order, each block's rows shuffled (whatever the batch size)."""
        blocks = list(torch.argsort(self.rows).split(self.block_rows))
        order = torch.randperm(len(blocks), generator=generator)
        return torch.cat([blocks[i][torch.randperm(len(blocks[i]), generator=generator)] for i in order.tolist()])

    def update_digest(self, digest) -> None:
        """Feed these rows' bytes, in order, to a hashlib ``digest``: the same as the in-memory rows'."""
        for batch in self.split(max(BLOCK_BYTES // int(np.prod(self.shape_of_row)), 1)):
            digest.update(batch.numpy())
