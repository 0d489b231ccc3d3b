"""Writing a file so that a crash, a signal or a full disk never leaves it half-written."""

from __future__ import annotations

import os
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
                             f"{'the file already there is unchanged' if path.exists() else 'nothing was written'}"
                             ) from e
        raise
    _fsync_dir(path.parent)


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
