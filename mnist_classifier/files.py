"""Writing a file so that a crash, a signal or a full disk never leaves it half-written."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from .errors import SaveFailed


def atomic_write(path: str | Path, write: Callable[[BinaryIO], object]) -> None:
    """Call ``write`` on a temporary file in the same folder, fsync, then rename it over ``path``.

    Readers see the old file or the new one, never a mix; a link at ``path`` is replaced, never
    written through. A failed write (disk full, no permission) raises ``SaveFailed`` in one line and
    leaves whatever was at ``path`` unchanged.
    """
    path = Path(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        # mkstemp makes the file private (0600); give it the mode an ordinary write would.
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic on POSIX and Windows
    except BaseException as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if _is_write_failure(e):
            raise SaveFailed(f"{path}: could not be saved ({_why_not_written(e, path.parent)}); "
                             f"{'the file already there is unchanged' if _exists(path) else 'nothing was written'}"
                             ) from e
        raise
    _fsync_dir(path.parent)


def probe_writable(folder: str | Path, name: str = "probe") -> None:
    """Create and remove a temporary file in ``folder`` named as a save of ``name`` would name its own
    (so a name too long shows too); raises the OSError that a real write would meet."""
    fd, probe = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    os.close(fd)
    os.unlink(probe)


RECEIPT_FORMAT = "mnist_classifier.receipt/1"


# Every file that lives beside another is named in this module alone (the tests use these names too).
def companion_paths(model_fn: str | Path) -> dict[str, Path]:
    """What a run keeps beside its model file: ``m.pth`` -> ``m.pth.history.csv`` (a row per epoch),
    ``m.pth.config.json`` (the settled configuration) and ``m.pth.ckpt`` (the default checkpoint). The
    whole name is kept, so ``m.pth`` and ``m.pt`` never share."""
    path = Path(model_fn)
    return {"history": path.with_name(f"{path.name}.history.csv"),
            "config": path.with_name(f"{path.name}.config.json"),
            "checkpoint": path.with_name(f"{path.name}.ckpt")}


def lock_path(path: str | Path) -> Path:
    """The hidden lock file that keeps a second run from writing ``path`` at the same time."""
    path = Path(path)
    return path.parent / f".{path.name}.lock"


def receipt_path(path: str | Path) -> Path:
    """Where ``write_with_receipt`` records what it wrote: a hidden file beside ``path``."""
    path = Path(path)
    return path.with_name(f".{path.name}.mnist_classifier.json")


def probe_receipt_writable(path: str | Path) -> None:
    """Raise the OSError that ``write_with_receipt(path)`` would meet writing its receipt (a name too
    long, say), so that a caller can refuse before any work rather than after the file is written.
    The receipt's temporary file has the longest name of all, so probing it tests the receipt too."""
    path = Path(path)
    probe_writable(path.parent, receipt_path(path).name)


def write_with_receipt(path: str | Path, write: Callable[[BinaryIO], object], kind: str) -> None:
    """``atomic_write``, then a receipt beside the file with its size and SHA-256, so that a later run
    can tell this very file from any other (``unchanged_since_written``). A file's own content cannot
    prove who wrote it: a user's CSV can have any header."""
    path = Path(path)
    atomic_write(path, write)
    receipt = {"format": RECEIPT_FORMAT, "kind": kind, "name": path.name, **_fingerprint(path)}
    try:
        atomic_write(receipt_path(path), lambda f: f.write(json.dumps(receipt).encode()))
    except SaveFailed as e:
        raise SaveFailed(f"{path}: written, but not its receipt {receipt_path(path).name} "
                         f"({_why_not_written(e.__cause__, path.parent)}); without one it counts as a file of "
                         "yours and is never replaced") from e.__cause__


def unchanged_since_written(path: str | Path, kind: str) -> bool:
    """Whether ``path`` is byte for byte a ``kind`` file that ``write_with_receipt`` wrote there: a file
    edited since (a spreadsheet's save included), or one without its receipt, is not."""
    path = Path(path)
    receipt = _read_receipt(receipt_path(path))
    if not isinstance(receipt, dict) or receipt.get("format") != RECEIPT_FORMAT or receipt.get("kind") != kind \
            or receipt.get("name") != path.name:
        return False
    try:
        if path.stat().st_size != receipt.get("size"):  # cheap first: most changes change the size
            return False
        return _fingerprint(path)["sha256"] == receipt.get("sha256")
    except OSError:
        return False


def _fingerprint(path: Path) -> dict:
    with open(path, "rb") as f:
        return {"size": os.fstat(f.fileno()).st_size, "sha256": hashlib.file_digest(f, "sha256").hexdigest()}


def _read_receipt(path: Path) -> object:
    """The receipt's JSON, or None: a link, FIFO or large file there is no receipt of ours."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        try:
            return json.loads(f.read(4096))
        except (OSError, ValueError):
            return None


def _exists(path: Path) -> bool:
    # Path.exists raises for a name too long, which is what a failed save may have met.
    try:
        return path.exists()
    except OSError:
        return False


def _is_write_failure(error: BaseException) -> bool:
    # torch reports a failed write as a RuntimeError raised while handling the OSError; any other
    # RuntimeError is a bug and keeps its traceback.
    return isinstance(error, OSError) or (isinstance(error, RuntimeError) and isinstance(error.__context__, OSError))


def _why_not_written(error: BaseException, folder: Path) -> str:
    # torch reports a failed write as "unexpected pos ..."; the OSError behind it names the cause.
    cause = error if isinstance(error, OSError) else error.__context__
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror
    try:
        space = os.statvfs(folder)
    except OSError:
        return "the write failed"
    return f"the write failed with {space.f_bavail * space.f_frsize:,} bytes free on that disk"


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; not every platform lets a folder be opened this way.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
