"""The four families on text, in the seed's block style. Input: token ids (N, T), padded with 0
(``data/tokens.py``); output: log-probabilities per class, as every family gives.

- ``linear``: fastText's model. The mean of the embeddings of the tokens and of their neighbouring
  pairs (bigrams, hashed into buckets), then one Linear: a bag of words and n-grams.
- ``mlp``: the same bag into the seed's ``Block``s.
- ``rnn``: token embeddings into a bidirectional GRU or LSTM (kh-kim/simple-ntc's model), its
  outputs max-pooled over the text, then the seed's head.
- ``cnn``: Kim's (2014) text CNN: filters 3, 4 and 5 tokens wide over the embeddings, each
  max-pooled over the text, then the seed's head.

Each family takes its image namesake's options (``--hidden_size``, ``--cell``, ``--hidden_sizes``,
...), so the flags mean the same on any data; the CNN's filters of each width are ``--channels``'
last value. ``TEXT_FAMILIES`` maps the names to these; the text kind builds and rebuilds from it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from . import cnn, linear, mlp, rnn
from .mlp import head

BAG_DIM = 64  # a bag's embedding: fastText's default is 100; 64 loses nothing measurable here
EMBEDDING_DIM = 128  # a token's embedding for the RNN and the CNN
BIGRAM_BUCKETS = 2**17  # hashed bigram slots of a bag (fastText: 2 million; it trains with sparse updates)
WIDTHS = (3, 4, 5)  # Kim's filter widths, in tokens
PAD_ID = 0


def _regularizer(size: int, use_batch_norm: bool, dropout_p: float) -> nn.Module:
    return nn.BatchNorm1d(size) if use_batch_norm else nn.Dropout(dropout_p)


class TextBag(nn.Module):
    """(N, T) token ids -> the mean embedding of the tokens and their hashed bigrams -> the seed's
    blocks of ``hidden_sizes`` (none: the linear model) -> Linear -> LogSoftmax."""

    def __init__(self, vocabulary: int, output_size: int, hidden_sizes: Sequence[int] = (),
                 use_batch_norm: bool = True, dropout_p: float = mlp.Options.dropout_p, classify: bool = True,
                 embedding_dim: int = BAG_DIM, buckets: int = BIGRAM_BUCKETS):
        super().__init__()
        self.vocabulary, self.output_size, self.hidden_sizes = vocabulary, output_size, list(hidden_sizes)
        self.use_batch_norm, self.dropout_p, self.classify = use_batch_norm, dropout_p, classify
        self.embedding_dim, self.buckets = embedding_dim, buckets
        self.bag = nn.EmbeddingBag(vocabulary + buckets, embedding_dim, mode="mean", padding_idx=PAD_ID)
        self.layers = nn.Sequential(*head(embedding_dim, output_size, self.hidden_sizes, use_batch_norm, dropout_p,
                                          classify))

    @property
    def registry_name(self) -> str:
        return "mlp" if self.hidden_sizes else "linear"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.long()
        # |x| = (batch_size, length) -> with its bigrams (batch_size, 2 * length - 1) -> (batch_size, embedding_dim)
        return self.layers(self.bag(torch.cat([x, self.bigrams(x)], dim=1)))

    def bigrams(self, x: torch.Tensor) -> torch.Tensor:
        """Each pair of neighbouring tokens as one id past the vocabulary (hashed: collisions are rare
        enough to cost nothing measurable); a pair with padding is padding."""
        first, second = x[:, :-1], x[:, 1:]
        hashed = self.vocabulary + (first * 1_000_003 + second) % self.buckets
        return torch.where((first == PAD_ID) | (second == PAD_ID), PAD_ID, hashed)

    def architecture(self) -> dict:
        return {"vocabulary": self.vocabulary, "output_size": self.output_size, "hidden_sizes": self.hidden_sizes,
                "use_batch_norm": self.use_batch_norm, "dropout_p": self.dropout_p, "classify": self.classify,
                "embedding_dim": self.embedding_dim, "buckets": self.buckets}


def _lengths(x: torch.Tensor) -> torch.Tensor:
    """Each row's tokens before its padding; at least 1 (an empty text reads as one padding token)."""
    return (x != PAD_ID).sum(dim=1).clamp(min=1)


def _positions(x: torch.Tensor) -> torch.Tensor:
    """0, 1, 2, ... along the last axis of ``x``, for every row. Counted from ``x`` itself rather than
    with ``torch.arange(length)``, which an ONNX export would fix at the example's length."""
    return torch.ones_like(x, dtype=torch.long).cumsum(dim=-1) - 1


class TextRNN(nn.Module):
    """(N, T) token ids -> embeddings -> stacked GRU or LSTM layers, each reading every text forwards
    and (bidirectional) backwards from its own last token -> the outputs max-pooled over the text ->
    LeakyReLU -> BatchNorm1d (or Dropout) -> Linear -> LogSoftmax."""

    registry_name = "rnn"

    def __init__(self, vocabulary: int, output_size: int, hidden_size: int = rnn.Options.hidden_size,
                 n_layers: int = rnn.Options.n_layers, cell: str = rnn.Options.cell,
                 bidirectional: bool = rnn.Options.bidirectional, use_batch_norm: bool = True,
                 dropout_p: float = rnn.Options.dropout_p, classify: bool = True, embedding_dim: int = EMBEDDING_DIM):
        super().__init__()
        self.vocabulary, self.output_size, self.hidden_size, self.n_layers = vocabulary, output_size, hidden_size, \
            n_layers
        self.cell, self.bidirectional, self.use_batch_norm = cell, bidirectional, use_batch_norm
        self.dropout_p, self.classify, self.embedding_dim = dropout_p, classify, embedding_dim
        self.embed = nn.Embedding(vocabulary, embedding_dim, padding_idx=PAD_ID)
        directions = 2 if bidirectional else 1
        # One single-direction layer per direction and level: the backward one reads each text reversed
        # within its own length, so that neither ever reads padding before a text's tokens. (torch's
        # packed sequences do the same, but their backward pass took 25 times as long on a CPU.)
        self.layers = nn.ModuleList(
            nn.ModuleList(rnn.CELLS[cell](embedding_dim if level == 0 else hidden_size * directions, hidden_size,
                                          batch_first=True) for _ in range(directions))
            for level in range(n_layers))
        self.between = nn.Dropout(dropout_p if n_layers > 1 else 0.0)
        features = hidden_size * directions
        self.head = nn.Sequential(nn.LeakyReLU(), _regularizer(features, use_batch_norm, dropout_p),
                                  nn.Linear(features, output_size), *([nn.LogSoftmax(dim=-1)] if classify else []))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.long()
        lengths = _lengths(x)
        steps = _positions(x)
        inside = steps < lengths[:, None]  # (batch_size, length)
        order = _reversal(lengths, steps)
        h = self.embed(x)
        if x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            with torch.autocast("cpu", enabled=False):  # oneDNN has no bfloat16 LSTM on CPUs (the image RNN's note)
                h = self._recur(h.float(), order)
        else:
            h = self._recur(h, order)
        # |h| = (batch_size, length, features); the padding's steps are left out of the max.
        return self.head(h.masked_fill(~inside[..., None], float("-inf")).amax(dim=1))

    def _recur(self, h: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
        for level, directions in enumerate(self.layers):
            if level:
                h = self.between(h)
            forward = directions[0](h)[0]
            if len(directions) == 1:
                h = forward
                continue
            backward = _gather(directions[1](_gather(h, order))[0], order)  # reversed back into text order
            h = torch.cat([forward, backward], dim=-1)
        return h

    def architecture(self) -> dict:
        return {"vocabulary": self.vocabulary, "output_size": self.output_size, "hidden_size": self.hidden_size,
                "n_layers": self.n_layers, "cell": self.cell, "bidirectional": self.bidirectional,
                "use_batch_norm": self.use_batch_norm, "dropout_p": self.dropout_p, "classify": self.classify,
                "embedding_dim": self.embedding_dim}


def _reversal(lengths: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
    """For each row, the positions that read its tokens last to first, the padding after them in place."""
    backwards = lengths[:, None] - 1 - steps
    return torch.where(backwards >= 0, backwards, steps)


def _gather(h: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """Each row of ``h`` (batch_size, length, features) in its own ``order`` of steps. Plain indexing:
    ``gather`` would fix an ONNX export's length at the example's."""
    rows = _positions(order[:, 0])[:, None]
    return h[rows, order]


class TextCNN(nn.Module):
    """(N, T) token ids -> embeddings -> Conv1d of each width in ``widths`` (``filters`` each) ->
    LeakyReLU -> max over the text's windows -> BatchNorm1d (or Dropout) -> the seed's blocks ->
    Linear -> LogSoftmax."""

    registry_name = "cnn"

    def __init__(self, vocabulary: int, output_size: int, filters: int = 100, widths: Sequence[int] = WIDTHS,
                 hidden_sizes: Sequence[int] = (), use_batch_norm: bool = True,
                 dropout_p: float = cnn.Options.dropout_p, classify: bool = True, embedding_dim: int = EMBEDDING_DIM):
        super().__init__()
        self.vocabulary, self.output_size, self.filters, self.widths = vocabulary, output_size, filters, list(widths)
        self.hidden_sizes, self.use_batch_norm, self.dropout_p = list(hidden_sizes), use_batch_norm, dropout_p
        self.classify, self.embedding_dim = classify, embedding_dim
        self.embed = nn.Embedding(vocabulary, embedding_dim, padding_idx=PAD_ID)
        self.convs = nn.ModuleList(nn.Conv1d(embedding_dim, filters, width) for width in self.widths)
        features = filters * len(self.widths)
        self.head = nn.Sequential(_regularizer(features, use_batch_norm, dropout_p),
                                  *head(features, output_size, self.hidden_sizes, use_batch_norm, dropout_p,
                                        classify))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.long()
        lengths = _lengths(x)
        widest = max(self.widths)
        if x.size(1) < widest:  # a text shorter than a filter: padded to one window
            x = nn.functional.pad(x, (0, widest - x.size(1)), value=PAD_ID)
        # |embedded| = (batch_size, embedding_dim, length): Conv1d slides along the last axis.
        embedded = self.embed(x).transpose(1, 2)
        pooled = []
        for width, conv in zip(self.widths, self.convs, strict=True):
            maps = nn.functional.leaky_relu(conv(embedded))  # (batch_size, filters, length - width + 1)
            # Windows that start past a text's last full window see only padding: left out of the max.
            starts = _positions(maps[:, 0])
            inside = starts < (lengths - width + 1).clamp(min=1)[:, None]
            pooled.append(maps.masked_fill(~inside[:, None, :], float("-inf")).amax(dim=-1))
        return self.head(torch.cat(pooled, dim=1))

    def architecture(self) -> dict:
        return {"vocabulary": self.vocabulary, "output_size": self.output_size, "filters": self.filters,
                "widths": self.widths, "hidden_sizes": self.hidden_sizes, "use_batch_norm": self.use_batch_norm,
                "dropout_p": self.dropout_p, "classify": self.classify, "embedding_dim": self.embedding_dim}


class TextFamily:
    """A family on token ids, with the registry's interface (``Options``, ``accepts``, ``build``,
    ``MODEL_CLASS``): its image namesake's options, built for ``vocabulary`` tokens."""

    def __init__(self, name: str, model_class: type[nn.Module], options_of, vocabulary: int | None = None):
        self.name, self.MODEL_CLASS, self._options_of, self.vocabulary = name, model_class, options_of, vocabulary
        self.Options = {"linear": linear, "mlp": mlp, "rnn": rnn, "cnn": cnn}[name].Options

    def for_vocabulary(self, vocabulary: int) -> TextFamily:
        return TextFamily(self.name, self.MODEL_CLASS, self._options_of, vocabulary)

    def accepts(self, input_shape: tuple[int, ...]) -> str | None:
        return None if len(input_shape) == 1 else f"it reads texts (token ids), not inputs of shape {input_shape}"

    def build(self, input_shape: tuple[int, ...], output_size: int, classify: bool, **options) -> nn.Module:
        return self.MODEL_CLASS(self.vocabulary, output_size, classify=classify, **self._options_of(options))


def _bag_options(options: dict) -> dict:
    """The MLP's options on a bag: its hidden sizes, or the seed's rule from the bag's size down."""
    sizes = options.get("hidden_sizes")
    if sizes is None and "n_layers" in options:
        sizes = mlp.get_hidden_sizes(BAG_DIM, 2, options["n_layers"])
    return {"hidden_sizes": sizes or [],
            "use_batch_norm": not options.get("use_dropout", False),
            **({"dropout_p": options["dropout_p"]} if "dropout_p" in options else {})}


def _rnn_options(options: dict) -> dict:
    return {"hidden_size": options["hidden_size"], "n_layers": options["n_layers"], "cell": options["cell"],
            "bidirectional": options["bidirectional"], "use_batch_norm": not options["use_dropout"],
            "dropout_p": options["dropout_p"]}


def _cnn_options(options: dict) -> dict:
    return {"filters": options["channels"][-1], "hidden_sizes": options["hidden_sizes"],
            "use_batch_norm": not options["use_dropout"], "dropout_p": options["dropout_p"]}


TEXT_FAMILIES = {
    "linear": TextFamily("linear", TextBag, lambda options: {}),
    "mlp": TextFamily("mlp", TextBag, _bag_options),
    "rnn": TextFamily("rnn", TextRNN, _rnn_options),
    "cnn": TextFamily("cnn", TextCNN, _cnn_options),
}
