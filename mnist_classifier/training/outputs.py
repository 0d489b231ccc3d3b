"""The files a training run writes: checked before any work starts, and held while it runs.

An output path must not be one of the run's inputs or another of its outputs; it must be a
regular file (not a symbolic link, FIFO or device) or not exist yet; an existing file is replaced
only when it is a model file, checkpoint, run history or run configuration of ours. While a run
writes ``--model_fn``, an advisory lock keeps a second run from writing the same file.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import sys
from pathlib import Path

import torch

from ..errors import UserError
from ..files import lock_path, probe_writable
from ..inference.model_file import FORMAT, OLD_FORMATS
from .checkpoint import FORMAT as CHECKPOINT_FORMAT
from .run_log import is_our_config, is_our_history

# What each output may replace: a model file only a model file, a checkpoint only a checkpoint, a
# run's history or configuration beside the model file only an earlier one of ours.
REPLACEABLE = {"--model_fn": (lambda path: is_ours(path, (FORMAT, *OLD_FORMATS)), "model file"),
               "--checkpoint_fn": (lambda path: is_ours(path, (CHECKPOINT_FORMAT,)), "checkpoint"),
               "--model_fn's history": (is_our_history, "history CSV"),
               "--model_fn's configuration": (is_our_config, "configuration JSON")}

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; everything else still applies
    fcntl = None


def check_outputs(outputs: dict[str, str | Path], inputs: dict[str, str | Path],
                  updates: dict[str, str] | None = None, folders: dict[str, str | Path | None] | None = None) -> None:
    """Refuse, naming the flag, any output (flag -> path) that would destroy something.

    ``updates`` maps an output flag to the input flag it may rewrite (a resumed checkpoint goes on
    being written where it was read from). ``folders``: output folders (flag -> path, None where not
    asked for), such as --tensorboard's, which must not be where a file is read or written.
    """
    for flag, folder in (folders or {}).items():
        if folder is not None:
            check_folder_output(flag, Path(folder), {**inputs, **outputs})
    seen: dict[Path, str] = {}
    for flag, path in outputs.items():
        if str(path).endswith(("/", os.sep)) or Path(path).name in ("", ".", ".."):
            raise UserError(f"{flag} {path} names a folder; give a file path")
        key = Path(path).resolve()
        if key in seen:
            raise UserError(f"{flag} {path} is also the {seen[key]}; give them different paths")
        seen[key] = flag
        allowed = (updates or {}).get(flag)
        check_output(flag, Path(path), {name: p for name, p in inputs.items() if name != allowed})


def check_output(flag: str, path: Path, inputs: dict[str, str | Path], replaceable: tuple | None = None) -> None:
    """Like ``check_outputs`` for one path; ``replaceable`` (recognise, kind) says which existing file
    it may replace, when the flag's entry in ``REPLACEABLE`` does not."""
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
    recognise, kind = replaceable or REPLACEABLE.get(flag, (lambda _: False, "file"))
    if not recognise(path):
        instead = "another --model_fn" if flag.startswith("--model_fn's") else "another path"
        raise UserError(f"{flag} {path} exists and is not a {kind} of mnist_classifier; it is never replaced: "
                        f"choose {instead}, or remove it yourself (rm {path})")
    _check_folder(flag, path)


def check_folder_output(flag: str, folder: Path, files: dict[str, str | Path]) -> None:
    """Refuse an output folder that is, or would be made inside, one of ``files`` (flag -> path): made
    first, it would leave no room for the file (a save's "Is a directory" after the whole run)."""
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{flag} {folder}: not a folder")
    where = folder.resolve()
    for file_flag, path in files.items():
        file = Path(path).resolve()
        if file == where or file in where.parents:
            clash = "is also the" if file == where else f"would be a folder inside {path}, the"
            raise UserError(f"{flag} {folder} {clash} {file_flag}; give them different paths")


def is_ours(path: Path, formats: tuple[str, ...]) -> bool:
    """Whether ``path`` is a file this package wrote in one of ``formats`` (read without running
    code; the weights are memory-mapped, not read)."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # anything unreadable is simply not ours
        return False
    return isinstance(payload, dict) and payload.get("format") in formats


def _check_folder(flag: str, path: Path) -> None:
    """The folder exists and takes a new file (saves go to a temporary file there, then a rename)."""
    folder = path.parent
    if not folder.is_dir():
        raise UserError(f"{flag} {path}: the folder {folder} does not exist")
    try:
        probe_writable(folder, path.name)
    except OSError as e:
        raise UserError(f"{flag} {path}: cannot write into {folder} ({e.strerror})") from e


@contextlib.contextmanager
def writing(paths: dict[str, str | Path]):
    """Hold an advisory lock on each path (flag -> path) while the block runs; refuse at once when
    another process holds one, naming that process. A lock is a hidden file beside its path, removed
    afterwards."""
    with contextlib.ExitStack() as stack:
        for flag, path in paths.items():
            stack.enter_context(_locked(Path(path), flag))
        yield


@contextlib.contextmanager
def _locked(path: Path, flag: str):
    if fcntl is None:
        yield
        return
    lock = lock_path(path)
    fd = _acquire(lock, flag, path)
    try:
        try:
            os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}: {' '.join(sys.argv)}\n".encode())
        except OSError as e:
            raise UserError(f"{flag} {path}: cannot write its lock file {lock} ({e.strerror})") from e
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock)  # before unlocking: a waiting process then retries on a fresh file
        os.close(fd)


def _acquire(lock_path: Path, flag: str, path: Path) -> int:
    while True:
        fd = _open_lock_file(lock_path, flag)
        try:
            if _locked_the_current_file(fd, lock_path, flag, path):
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)


def _locked_the_current_file(fd: int, lock_path: Path, flag: str, path: Path) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 4096).decode(errors="replace").strip() or "another process"
        raise UserError(f"{flag} {path} is being written by another training ({holder}); wait for it to "
                        "finish or choose another path") from None
    except OSError as e:  # e.g. no locks on this file system
        raise UserError(f"{flag} {path}: cannot lock {lock_path} ({e.strerror})") from e
    # The holder may have removed the file between our open and lock: then lock the new one.
    try:
        if os.stat(lock_path, follow_symlinks=False).st_ino != os.fstat(fd).st_ino:
            return False
    except FileNotFoundError:
        return False
    os.ftruncate(fd, 0)
    return True


def _open_lock_file(lock_path: Path, flag: str) -> int:
    """Open the lock file without following a link or blocking on a FIFO; only a regular file will do."""
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
    except OSError as e:
        raise UserError(f"{flag}: its lock file {lock_path} cannot be opened ({e.strerror}); if it is not a "
                        f"regular file, remove it (rm {lock_path})") from e
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UserError(f"{flag}: its lock file {lock_path} is not a regular file; remove it (rm {lock_path})")
    return fd
