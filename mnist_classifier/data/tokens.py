"""Texts as token ids: a subword tokenizer fitted on the training texts, and ``TokenRows``, the texts
of a data set as the trainer indexes them.

The tokenizer is Hugging Face ``tokenizers``' BPE behind Unicode NFKC normalisation (zero-width
characters removed, lower case) and a split at white space and punctuation. BPE needs no
dictionary and no morphological analyser: a Korean eojeol it has not seen is cut into the pieces it
has (a stem, then a particle), and so is a rare English word. Its vocabulary grows as long as a
pair of pieces occurs twice in the training texts, up to ``MAX_VOCABULARY``. It is saved as its own
JSON, a plain string in the model file.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator

import numpy as np
import torch

PAD, UNK = "[PAD]", "[UNK]"  # ids 0 and 1: padding, and a character the training texts never had
PAD_ID, UNK_ID = 0, 1
MAX_VOCABULARY = 32_000  # fits uint16: the cache takes 2 bytes a token
LONGEST = 512  # the largest cut, in tokens, whatever the texts' lengths: 4 times the CNN's and RNN's work at 2,048
CUT_QUANTILE = 0.95  # texts are cut at the length this share of the training texts fits in
LENGTH_SAMPLE = 5_000  # training texts whose lengths choose the cut (its 95th percentile to within a few %)
FIT_CHARS = 10_000_000  # characters of training texts the tokenizer is trained on, at most
HEAD_CHARS = 12  # characters a token may take, on average, in the head of a text encoded for its first tokens
ENCODE_CHUNK = 10_000  # texts encoded at a time: a bound on the memory their encodings hold
# A text longer than this is read up to here: the model reads its first few hundred tokens at most,
# and a 50 MB "text" (a log file, a dump) must not fill memory nor hold the tokenizer for minutes.
MAX_TEXT_CHARS = 200_000
ZERO_WIDTH_CHARS = "\u200b\u200c\u200d\u2060\ufeff\u00ad"  # invisible characters that would split or join words
ZERO_WIDTH = f"[{ZERO_WIDTH_CHARS}]"
# A text batch is padded to its longest text; rows of about the same length are put together
# (``TokenRows.epoch_order``): a pool of this many batches is sorted by length, then cut into batches.
POOL_BATCHES = 50


def new_tokenizer():
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers

    tokenizer = Tokenizer(models.BPE(unk_token=UNK))
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace(Regex(ZERO_WIDTH), ""),
                                                 normalizers.Lowercase()])
    # Split at spaces and punctuation. Not at digits too: a split there costs 30% of the encoding's time
    # (benchmarks/bench_texts.py), and BPE cuts numbers into pieces of its own.
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.encode_special_tokens = True  # "[PAD]" written in a text is text, never the padding id
    return tokenizer


# The saved tokenizer's normalizer, done by Python: the same strings (tests/test_texts.py compares them;
# they differ only on characters newer than Python's Unicode 14), at a tenth of the cost. The Rust
# normalizer tracks every character's offsets, which ids do not need: 40% of an encoding's time
# (benchmarks/bench_texts.py). A capital sigma is made small first, as the Rust normalizer does:
# Python's str.lower would make a word's last one a final sigma.
UNSEEN = re.compile(ZERO_WIDTH)


def normalized(text: str) -> str:
    """``text`` as the tokenizer's normalizer writes it: NFKC, zero-width characters removed, lower case."""
    return UNSEEN.sub("", unicodedata.normalize("NFKC", text)).replace("\u03a3", "\u03c3").lower()


def _unnormalizing(tokenizer):
    """A copy of ``tokenizer`` that takes ``normalized`` texts: it skips its normalizer."""
    from tokenizers import Tokenizer

    copy = Tokenizer.from_str(tokenizer.to_str())
    copy.normalizer = None
    copy.encode_special_tokens = True
    return copy


def fit_tokenizer(texts: list[str]):
    """A BPE tokenizer trained on ``texts`` (the training rows only), or on a seeded sample of
    ``FIT_CHARS`` characters of them: the vocabulary of a larger set is the same few thousand
    frequent pieces, and training time grows with the characters."""
    from tokenizers import trainers

    tokenizer = new_tokenizer()
    normalizer, tokenizer.normalizer = tokenizer.normalizer, None
    trainer = trainers.BpeTrainer(vocab_size=MAX_VOCABULARY, min_frequency=2, special_tokens=[PAD, UNK],
                                  show_progress=False)
    sample = [normalized(text) for text in _sample_of_chars(texts, FIT_CHARS)]
    tokenizer.train_from_iterator(sample, trainer, length=len(sample))
    tokenizer.normalizer = normalizer
    return tokenizer


def _sample_of_chars(texts: list[str], chars: int) -> list[str]:
    """All of ``texts`` when they hold at most ``chars`` characters, else texts in a seeded order until
    they do."""
    if sum(map(len, texts)) <= chars:
        return texts
    sample, total = [], 0
    for i in np.random.default_rng(0).permutation(len(texts)):
        sample.append(texts[i])
        total += len(texts[i])
        if total >= chars:
            return sample
    return sample


def load_tokenizer(saved: str):
    """A tokenizer from its JSON (a model file's)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_str(saved)
    tokenizer.encode_special_tokens = True  # not part of the JSON
    return tokenizer


def choose_cut(lengths: np.ndarray) -> int:
    """The cut in tokens: the length ``CUT_QUANTILE`` of the texts fit in, rounded up to a multiple of 8
    (at least 8, at most ``LONGEST``)."""
    quantile = float(np.quantile(lengths, CUT_QUANTILE)) if len(lengths) else 8.0
    return int(min(max(8 * np.ceil(quantile / 8), 8), LONGEST))


def token_dtype(vocabulary: int) -> np.dtype:
    return np.dtype(np.uint16 if vocabulary <= 2**16 else np.int32)


class Encoder:
    """Texts into token ids, as fast as the tokenizer goes: normalised by ``normalized``, and only the
    head of a long text encoded. Its first ``cut`` tokens are those of its first ``HEAD_CHARS * cut``
    characters up to a space: the pre-tokenizer splits at spaces, and BPE never merges across one. A
    text whose head gives fewer tokens is encoded whole."""

    def __init__(self, tokenizer, cut: int | None = None):
        self.tokenizer, self.cut = _unnormalizing(tokenizer), cut
        if cut:
            self.tokenizer.enable_truncation(cut)

    def ids(self, texts: list[str]) -> list[list[int]]:
        """Each text's ids, cut at ``cut`` (all of them without one)."""
        texts = [normalized(text) for text in texts]
        heads = [_head(text, HEAD_CHARS * self.cut) for text in texts] if self.cut else texts
        ids = [e.ids for e in self.tokenizer.encode_batch_fast(heads, add_special_tokens=False)]
        short = [i for i, (head, text) in enumerate(zip(heads, texts, strict=True))
                 if len(ids[i]) < self.cut and len(head) < len(text)] if self.cut else []
        for i, encoding in zip(short, self.tokenizer.encode_batch_fast([texts[i] for i in short],
                                                                       add_special_tokens=False), strict=True):
            ids[i] = encoding.ids
        return ids

    def rows(self, texts: list[str], vocabulary: int, progress=None) -> TokenRows:
        """``texts`` as ``TokenRows``; ``progress(n)`` is told of each chunk of ``n`` texts encoded."""
        dtype, pieces, lengths = token_dtype(vocabulary), [], []
        for start in range(0, len(texts), ENCODE_CHUNK):
            chunk = self.ids(texts[start:start + ENCODE_CHUNK])
            pieces += [np.array(ids, dtype=dtype) for ids in chunk]
            lengths += map(len, chunk)
            if progress:
                progress(len(chunk))
        starts = np.zeros(len(texts) + 1, dtype=np.int64)
        np.cumsum(lengths, out=starts[1:])
        tokens = np.concatenate(pieces) if pieces else np.zeros(0, dtype=dtype)
        return TokenRows(tokens, starts, self.cut, texts=texts)


def _head(text: str, chars: int) -> str:
    """``text`` up to its last space before ``chars``; all of it when shorter or without one."""
    if len(text) <= chars:
        return text
    end = max(text.rfind(" ", 0, chars), text.rfind("\n", 0, chars), text.rfind("\t", 0, chars))
    return text[:end] if end > 0 else text


def lengths_of(tokenizer, texts: list[str]) -> np.ndarray:
    """Each text's length in tokens, uncut."""
    return np.array([len(ids) for ids in Encoder(tokenizer).ids(texts)], dtype=np.int64)


class TokenRows:
    """Texts as token ids, the tensor-like view the trainer indexes: every text's ids in one flat
    array (uint16 while the vocabulary fits: 2 bytes a token, no padding stored) and where each
    starts. Indexing gives a batch padded with ``PAD_ID`` to its longest text (int64, (N, longest)).

    ``rows`` are this view's texts (a split's); ``epoch_order`` puts texts of about the same length
    together, so that a batch holds little padding. ``texts``: the texts themselves, as given (the
    evaluation shows its worst mistakes with them).
    """

    dtype = torch.int64
    device = torch.device("cpu")

    def __init__(self, tokens: np.ndarray, starts: np.ndarray, cut: int, rows: np.ndarray | None = None,
                 texts: list[str] | None = None):
        self.tokens, self.starts, self.cut, self.texts = tokens, starts, cut, texts
        self.rows = np.arange(len(starts) - 1) if rows is None else rows

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.rows), self.cut)

    @property
    def lengths(self) -> np.ndarray:
        return self.starts[self.rows + 1] - self.starts[self.rows]

    def subset(self, positions) -> TokenRows:
        return TokenRows(self.tokens, self.starts, self.cut, self.rows[np.asarray(positions, dtype=np.int64)],
                         self.texts)

    def text(self, position: int) -> str:
        """The text at ``position`` of this view, as it was given."""
        return self.texts[int(self.rows[position])] if self.texts is not None else ""

    def to(self, device) -> TokenRows:
        return self  # a batch moves to the device when it is taken

    def __getitem__(self, positions) -> torch.Tensor:
        rows = self.rows[np.asarray(positions, dtype=np.int64)].reshape(-1)
        first, lengths = self.starts[rows], self.starts[rows + 1] - self.starts[rows]
        width = max(int(lengths.max()) if len(rows) else 1, 1)
        offsets = np.arange(width)
        inside = offsets[None, :] < lengths[:, None]
        batch = np.zeros((len(rows), width), dtype=np.int64)
        batch[inside] = self.tokens[(first[:, None] + offsets[None, :])[inside]]
        return torch.from_numpy(batch)

    def split(self, size: int) -> Iterator[torch.Tensor]:
        """Consecutive batches of at most ``size`` texts, in this view's order (for evaluation)."""
        for start in range(0, len(self), size):
            yield self[np.arange(start, min(start + size, len(self)))]

    def epoch_order(self, generator: torch.Generator | None = None, batch_size: int | None = None) -> torch.Tensor:
        """Positions for one epoch: shuffled, then each pool of ``POOL_BATCHES`` batches sorted by length
        and cut into batches, and the batches shuffled."""
        order = torch.randperm(len(self), generator=generator)
        if not batch_size:
            return order
        lengths = torch.from_numpy(self.lengths)
        pool = batch_size * POOL_BATCHES
        pools = [chunk[torch.argsort(lengths[chunk], stable=True)] for chunk in order.split(pool)]
        batches = [batch for chunk in pools for batch in chunk.split(batch_size)]
        full = [batch for batch in batches if len(batch) == batch_size]
        shuffled = [full[i] for i in torch.randperm(len(full), generator=generator).tolist()]
        # A short batch (one at most: the last pool's) goes last, so that every batch the trainer cuts
        # from this order is one of these.
        return torch.cat([*shuffled, *(batch for batch in batches if len(batch) < batch_size)])

    def update_digest(self, digest) -> None:
        """Feed these texts' ids, in order, to a hashlib ``digest``."""
        for start in range(0, len(self), ENCODE_CHUNK):
            rows = self.rows[start:start + ENCODE_CHUNK]
            digest.update(np.ascontiguousarray(self.lengths[start:start + ENCODE_CHUNK]).tobytes())
            for row in rows:
                digest.update(self.tokens[self.starts[row]:self.starts[row + 1]].tobytes())
