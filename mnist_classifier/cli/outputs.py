"""The files a training run writes: checked before any work starts, and held while it runs.

An output path must not be one of the run's inputs or another of its outputs; it must be a
regular file (not a symbolic link, FIFO or device) or not exist yet; an existing file is replaced
only when it is a model file or checkpoint of ours. While a run writes ``--model_fn``, an advisory
lock keeps a second run from writing the same file.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import sys
import tempfile
from pathlib import Path

import torch

from ..errors import UserError
from ..inference.model_file import FORMAT, OLD_FORMATS
from ..training.checkpoint import FORMAT as CHECKPOINT_FORMAT

OUR_FORMATS = (FORMAT, *OLD_FORMATS, CHECKPOINT_FORMAT)

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; everything else still applies
    fcntl = None


def check_outputs(outputs: dict[str, str | Path], inputs: dict[str, str | Path],
                  updates: dict[str, str] | None = None) -> None:
    """Refuse, naming the flag, any output (flag -> path) that would destroy something.

    ``updates`` maps an output flag to the input flag it may rewrite (a resumed checkpoint goes on
    being written where it was read from).
    """
    seen: dict[Path, str] = {}
    for flag, path in outputs.items():
        key = Path(path).resolve()
        if key in seen:
            raise UserError(f"{flag} {path} is also the {seen[key]}; give them different paths")
        seen[key] = flag
        allowed = (updates or {}).get(flag)
        check_output(flag, Path(path), {name: p for name, p in inputs.items() if name != allowed})


def check_output(flag: str, path: Path, inputs: dict[str, str | Path]) -> None:
    if path.is_symlink():
        raise UserError(f"{flag} {path} is a symbolic link; give the path of the file itself")
    if not path.exists():
        _check_folder(flag, path)
        return
    for input_flag, input_path in inputs.items():
        if Path(input_path).exists() and path.samefile(input_path):
            raise UserError(f"{flag} {path} is this run's input ({input_flag}); writing it would destroy it")
    if not stat.S_ISREG(path.stat().st_mode):
        raise UserError(f"{flag} {path} is {'a folder' if path.is_dir() else 'not a regular file (a FIFO or device)'}"
                        "; give a file path")
    if not is_ours(path):
        raise UserError(f"{flag} {path} exists and is not a model file or checkpoint of mnist_classifier; it is "
                        f"never replaced: choose another path, or remove it yourself (rm {path})")
    _check_folder(flag, path)


def is_ours(path: Path) -> bool:
    """Whether ``path`` is a model file or checkpoint this package wrote (read without running code;
    the weights are memory-mapped, not read)."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # anything unreadable is simply not ours
        return False
    return isinstance(payload, dict) and payload.get("format") in OUR_FORMATS


def _check_folder(flag: str, path: Path) -> None:
    """The folder exists and takes a new file (saves go to a temporary file there, then a rename)."""
    folder = path.parent
    if not folder.is_dir():
        raise UserError(f"{flag} {path}: the folder {folder} does not exist")
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", dir=folder)
    except OSError as e:
        raise UserError(f"{flag} {path}: cannot write into {folder} ({e.strerror})") from e
    os.close(fd)
    os.unlink(probe)


@contextlib.contextmanager
def writing(path: str | Path, flag: str = "--model_fn"):
    """Hold an advisory lock on ``path`` while the block runs; refuse at once when another process
    holds it, naming that process. The lock is a hidden file beside ``path``, removed afterwards."""
    if fcntl is None:
        yield
        return
    path = Path(path)
    lock_path = path.parent / f".{path.name}.lock"
    lock = _acquire(lock_path, flag, path)
    try:
        lock.write(f"pid {os.getpid()} on {socket.gethostname()}: {' '.join(sys.argv)}\n")
        lock.flush()
        yield
    finally:
        lock_path.unlink(missing_ok=True)  # before unlocking: a waiting process then retries on a fresh file
        lock.close()


def _acquire(lock_path: Path, flag: str, path: Path):
    while True:
        lock = open(lock_path, "a+")  # noqa: SIM115 (held open for the whole run)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "another process"
            lock.close()
            raise UserError(f"{flag} {path} is being written by another training ({holder}); wait for it to "
                            "finish or choose another path") from None
        # The holder may have removed the file between our open and lock: then lock the new one.
        try:
            if os.stat(lock_path).st_ino == os.fstat(lock.fileno()).st_ino:
                lock.seek(0)
                lock.truncate()
                return lock
        except FileNotFoundError:
            pass
        lock.close()
