"""Texts: ``--dataset text:PATH``, a folder of ``.txt`` files per class or a CSV/TSV file of texts and
labels (``data/texts.py`` reads it).

The record is ``{"kind": "text", "tokenizer", "vocabulary", "cut", "median_tokens", "longer"}``: the
BPE tokenizer fitted on the training texts (``data/tokens.py``), as its own JSON; its vocabulary;
the cut, in tokens, of every text; and, for the first line, the training texts' median length and
the share of them longer than the cut. A data set's texts become ``TokenRows`` (ids, no padding
stored); a batch is padded to its longest text. The families are ``models/text.py``'s.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch

from ..data import tokens
from ..errors import UserError
from .base import Kind

# Training settings for texts, by family, over the configuration's defaults (chosen on validation
# loss by benchmarks/eval_texts.py; docs/texts.md).
# They replace every family default set for pictures (the CNN's shifts and label smoothing).
TEXT_DEFAULTS = {"batch_size": 64, "n_epochs": 10, "lr": 1e-3, "weight_decay": 0.0, "lr_schedule": "cosine",
                 "label_smoothing": 0.0, "shift_px": 0.0}
TEXT_FAMILY_DEFAULTS: dict[str, dict] = {
    "linear": {"lr": 1e-2},
    "mlp": {"lr": 3e-3, "hidden_sizes": [256], "use_dropout": True, "dropout_p": 0.3},
    "rnn": {"lr": 2e-3},
    "cnn": {"lr": 1e-3, "channels": [100], "hidden_sizes": [128], "use_dropout": True, "dropout_p": 0.5},
}
TEXT_PREPARATION = ("the text as the tokenizer (its JSON, tokenizer.json, read by Hugging Face tokenizers in any "
                    "language it has) cuts it: NFKC, zero-width characters removed, lower case, split at spaces and "
                    "punctuation, BPE pieces; special tokens not added; the ids cut at the first `cut`; a "
                    "batch padded with id 0 after each text to its longest")
SHOWN = 60  # characters of a text that name it in predictions
# An export's shortest input: the text CNN's widest filter fits, whatever the exporter's shape guards.
EXPORT_MIN_LENGTH = 8


class Text(Kind):
    """Texts as subword token ids: a BPE tokenizer fitted on the training texts, cut at a length
    chosen from them."""

    kind, name = "text", "texts"
    title = "texts"
    prefix, builtins = "text", ()
    unit = "texts"
    takes_texts = True
    keeps_started_record = True  # a text model's weights mean its tokenizer's ids
    default_model = "auto"
    # Trained one after the other; the lower validation loss is kept (benchmarks/eval_texts.py: the two
    # bags beat TF-IDF and the CNN and RNN trail them on every set measured; docs/texts.md).
    auto_families = ("linear", "mlp")

    @classmethod
    def load(cls, dataset: str, data_dir: str, **options):
        from ..data.texts import load_texts  # the reader: only when training

        return load_texts(Path(dataset.partition(":")[2]), data_dir=data_dir, **options)

    @classmethod
    def defaults(cls, model: str) -> dict:
        family = TEXT_FAMILY_DEFAULTS.get("mlp" if model == "auto" else model, {})  # auto's options: the MLP's
        return TEXT_DEFAULTS | family

    @classmethod
    def fit(cls, texts: list[str]) -> Text:
        """The tokenizer and the cut, from the training texts alone."""
        tokenizer = tokens.fit_tokenizer(texts)
        sample = texts if len(texts) <= tokens.LENGTH_SAMPLE else \
            [texts[i] for i in np.random.default_rng(0).choice(len(texts), tokens.LENGTH_SAMPLE, replace=False)]
        lengths = tokens.lengths_of(tokenizer, sample)
        cut = tokens.choose_cut(lengths)
        return cls({"kind": cls.kind, "tokenizer": tokenizer.to_str(), "vocabulary": tokenizer.get_vocab_size(),
                    "cut": cut, "median_tokens": float(np.median(lengths)) if len(lengths) else 0.0,
                    "longer": float((lengths > cut).mean()) if len(lengths) else 0.0})

    @classmethod
    def fit_dataset(cls, dataset, rows: torch.Tensor | None = None) -> Text:
        texts = dataset.train[0]
        return cls.fit(texts if rows is None else [texts[i] for i in rows.tolist()])

    @property
    def tokenizer(self):
        if "_tokenizer" not in self.__dict__:
            self._tokenizer = tokens.load_tokenizer(self.values["tokenizer"])
        return self._tokenizer

    @property
    def encoder(self) -> tokens.Encoder:
        if "_encoder" not in self.__dict__:
            self._encoder = tokens.Encoder(self.tokenizer, self.values["cut"])
        return self._encoder

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.values["cut"],)

    def family(self, name: str):
        from ..models.text import TEXT_FAMILIES

        if name not in TEXT_FAMILIES:
            raise UserError(f"--model {name} cannot read texts; choose {', '.join(TEXT_FAMILIES)} or auto")
        return TEXT_FAMILIES[name].for_vocabulary(self.values["vocabulary"])

    def prepare_rows(self, x, name: str = "input") -> tokens.TokenRows:
        if hasattr(x, "token_rows"):  # a split the reader read: its ids are cached on disk (data/token_cache.py)
            return x.token_rows(self.encoder, self.values["vocabulary"], self.values["tokenizer"])
        texts = self._texts(x, name)
        return self.encoder.rows(texts, self.values["vocabulary"])

    def apply(self, x, name: str = "input") -> torch.Tensor:
        """Texts (one, or a list) as a batch of token ids, padded to the longest."""
        rows = self.prepare_rows(x, name)
        return rows[np.arange(len(rows))]

    def _texts(self, x, name: str) -> list[str]:
        if isinstance(x, str):
            return [x]
        if isinstance(x, (bytes, bytearray)):
            raise UserError(f"{name}: this model takes text (str), not bytes; decode it first")
        if hasattr(x, "tolist"):  # a pandas Series, a numpy array of strings
            x = x.tolist()
            x = [x] if isinstance(x, str) else x
        if not isinstance(x, (list, tuple)):
            raise UserError(f"{name}: this model takes texts (a str or a list of them), not a {type(x).__name__}")
        bad = next((t for t in x if not isinstance(t, str)), None)
        if bad is not None:
            raise UserError(f"{name}: this model takes texts (str); got a {type(bad).__name__} among them")
        return [text[:tokens.MAX_TEXT_CHARS] for text in x]  # the cut falls far inside that

    def check(self) -> bool:
        v = self.values
        if not (isinstance(v.get("tokenizer"), str) and isinstance(v.get("vocabulary"), int)
                and isinstance(v.get("cut"), int) and v["vocabulary"] >= 2 and v["cut"] >= 1):
            return False
        try:
            return json.loads(v["tokenizer"]).get("model", {}).get("type") == "BPE"
        except (ValueError, AttributeError):
            return False

    def describe(self) -> str:
        return f"texts, a vocabulary of {self.values['vocabulary']:,} subwords, cut at {self.values['cut']:,} tokens"

    def first_line(self, dataset, config) -> str:
        v = self.values
        fitted = f"the tokenizer of --init_from {v['started_from']}" if "started_from" in v else \
            "trained on the training rows"
        return (f"{dataset.found}; median {v.get('median_tokens', 0):,.0f} tokens; vocabulary {v['vocabulary']:,} "
                f"({fitted}); cut at {v['cut']:,} tokens ({v.get('longer', 0):.1%} of texts longer)")

    def preparation(self) -> str:
        return TEXT_PREPARATION

    def predict(self, predictor, inputs, top_k: int) -> list:
        texts = self._texts(inputs, "input")
        rows = self.prepare_rows(texts)
        note = unknown_note(rows)
        if note:  # answered, but on little: a script or alphabet training never had
            warnings.warn(note, UserWarning, stacklevel=3)
        names = [shown_text(text) for text in texts]
        return predictor.predictions(predictor.log_probs(rows[np.arange(len(rows))]), names, top_k)

    def pieces(self, text: str) -> list[str]:
        """The subwords the model reads of ``text``, as the tokenizer writes them (after the cut)."""
        encoded = self.encoder.tokenizer.encode(tokens.normalized(text), add_special_tokens=False)
        return encoded.tokens[:self.values["cut"]]

    def not_pictures(self) -> str:
        return f"this model takes texts ({self.describe()}), not images"

    def parity_inputs(self, rows: int, generator: torch.Generator) -> torch.Tensor:
        """Random token ids, each row of a random length (at least ``EXPORT_MIN_LENGTH``), padded after."""
        cut = self.values["cut"]
        ids = torch.randint(2, self.values["vocabulary"], (rows, cut), generator=generator)
        lengths = torch.randint(min(EXPORT_MIN_LENGTH, cut), cut + 1, (rows, 1), generator=generator)
        return ids.masked_fill(torch.arange(cut)[None, :] >= lengths, tokens.PAD_ID)

    def example_input(self, rows: int) -> torch.Tensor:
        return self.parity_inputs(rows, torch.Generator().manual_seed(0))

    def export_input(self) -> dict:
        return {"shape": ["batch", "length"], "dtype": "int64", "min_length": EXPORT_MIN_LENGTH,
                "length": f"the longest text's tokens in the batch, {EXPORT_MIN_LENGTH} to {self.values['cut']} "
                          f"(shorter texts padded with id 0 after their tokens; a batch padded to at least "
                          f"{EXPORT_MIN_LENGTH})"}

    def export_files(self) -> dict[str, str]:
        return {".tokenizer.json": self.values["tokenizer"]}


def unknown_note(rows: tokens.TokenRows) -> str | None:
    """A line on the texts most of whose tokens are characters the training texts never had (another
    script than theirs); None when there are none."""
    seen = np.concatenate([[0], np.cumsum(rows.tokens == tokens.UNK_ID)])
    unknown = seen[rows.starts[rows.rows + 1]] - seen[rows.starts[rows.rows]]
    mostly = [i for i, (n, length) in enumerate(zip(unknown, rows.lengths, strict=True))
              if length and 2 * n >= length]
    if not mostly:
        return None
    first = mostly[0]
    which = f"{len(mostly):,} of {len(rows):,} texts are" if len(rows) > 1 else "the text is"
    return (f"{which} mostly characters the training texts never had (another script?), so the answer rests on "
            f"little: {shown_text(rows.text(first))} is {unknown[first]:,} unknown tokens of {rows.lengths[first]:,}")


def shown_text(text: str) -> str:
    """A text as it names its prediction: its first ``SHOWN`` characters, on one line."""
    line = " ".join(text.split())
    return repr(line if len(line) <= SHOWN else line[:SHOWN - 3] + "...")
