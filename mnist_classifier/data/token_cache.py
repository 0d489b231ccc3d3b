"""Encode a split's texts once, into a token cache that later runs read.

A cache is a folder under ``--data_dir`` (``text-cache/NAME-HASH/``, one per source), holding for
each split a pair of files: ``KEY.tokens.npy`` (every text's ids, flat: uint16 while the vocabulary
fits, 2 bytes a token) and ``KEY.starts.npy`` (where each text starts). The key hashes the
tokenizer's JSON, the cut and the texts themselves, so a changed text, tokenizer or cut is encoded
again and an edit can never be missed; hashing is a fraction of a second per 100 MB of text.
Encoding shows a progress bar on a terminal. Ids that would not fit in the share of memory the run
may use are read from the file (a memory map), as a picture cache too large for memory is.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..files import SaveFailed, atomic_write
from ..resources import available_memory
from .tokens import ENCODE_CHUNK, Encoder, TokenRows

CACHE_VERSION = 1
KEPT = 8  # cached splits kept per source, the newest: older tokenizers' and edits' ids are removed
# The training and validation rows index one array: held once, so a larger share than pictures'.
MEMORY_SHARE = 0.25


class CachedTexts(list):
    """A split's texts, which know where their ids are cached: ``Text.prepare_rows`` asks them for
    ``token_rows``. Without a ``folder`` (an unwritable ``--data_dir``) they are encoded every run."""

    def __init__(self, texts: list[str], folder: Path | None):
        super().__init__(texts)
        self.folder = folder

    def token_rows(self, encoder: Encoder, vocabulary: int, tokenizer_json: str) -> TokenRows:
        if self.folder is None:
            return _encoded(self, encoder, vocabulary)
        key = cache_key(self, tokenizer_json, encoder.cut)
        found = read(self.folder, key, len(self))
        if found is not None:
            return TokenRows(*found, encoder.cut, texts=self)
        rows = _encoded(self, encoder, vocabulary)
        if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 writes what every rank encoded
            write(self.folder, key, rows)
        return rows


def _encoded(texts: list[str], encoder: Encoder, vocabulary: int) -> TokenRows:
    bar = tqdm(total=len(texts), desc="tokenising texts", unit="text", leave=False,
               disable=not sys.stderr.isatty() or len(texts) <= ENCODE_CHUNK)
    try:
        return encoder.rows(texts, vocabulary, progress=bar.update)
    finally:
        bar.close()


def cache_key(texts: list[str], tokenizer_json: str, cut: int) -> str:
    digest = hashlib.blake2b(f"{CACHE_VERSION} {cut} ".encode(), digest_size=16)
    digest.update(hashlib.blake2b(tokenizer_json.encode()).digest())
    for text in texts:
        raw = text.encode("utf-8", "surrogatepass")
        digest.update(len(raw).to_bytes(8, "little"))
        digest.update(raw)
    return digest.hexdigest()


def read(folder: Path, key: str, n_texts: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The cached (tokens, starts) of ``key``, or None. Tokens larger than the memory share are a
    read-only memory map of the file."""
    try:
        starts = np.load(folder / f"{key}.starts.npy")
        tokens = np.load(folder / f"{key}.tokens.npy", mmap_mode="r")
    except (OSError, ValueError):
        return None
    if len(starts) != n_texts + 1 or int(starts[-1]) != len(tokens):  # a damaged or foreign file
        return None
    if tokens.nbytes <= MEMORY_SHARE * available_memory():
        tokens = np.array(tokens)
    for path in (folder / f"{key}.starts.npy", folder / f"{key}.tokens.npy"):
        try:
            os.utime(path)  # used now: the newest are kept
        except OSError:
            pass  # a cache another user wrote: read, not refreshed
    return tokens, starts


def write(folder: Path, key: str, rows: TokenRows) -> None:
    """Save ``rows``' ids under ``key`` and remove the oldest entries past ``KEPT``. A cache that cannot
    be written costs the next run an encoding, nothing else: the run goes on."""
    try:
        atomic_write(folder / f"{key}.tokens.npy", lambda f: np.save(f, rows.tokens))
        atomic_write(folder / f"{key}.starts.npy", lambda f: np.save(f, rows.starts))
    except SaveFailed as e:
        print(f"token cache not saved: {e}", file=sys.stderr)
        return
    entries = sorted(folder.glob("*.tokens.npy"), key=lambda p: p.stat().st_mtime_ns, reverse=True)
    for old in entries[KEPT:]:
        old.unlink(missing_ok=True)
        old.with_name(old.name.replace(".tokens.npy", ".starts.npy")).unlink(missing_ok=True)


def cache_folder(data_dir: str, source: Path) -> tuple[Path | None, str | None]:
    """Where the token cache of ``source`` lives, and a note when it cannot be there."""
    key = hashlib.blake2b(os.fsencode(source.resolve()), digest_size=6).hexdigest()
    folder = Path(data_dir) / "text-cache" / f"{source.name or 'root'}-{key}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        return None, (f"--data_dir {data_dir}: cannot hold the token cache ({e.strerror}); the texts are "
                      "encoded again on every run")
    return folder, None
