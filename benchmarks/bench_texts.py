"""How fast do texts become token ids, and how fast does an epoch on them run?

    python benchmarks/bench_texts.py [--texts 100000] [--words 200] [--family linear mlp rnn cnn] [--skip_tokenising]

1. Tokenising: ``--texts`` texts of about ``--words`` words, from two sources: words drawn (seeded)
   from the spam-assassin e-mails' bodies at their own frequencies (a Zipf-like vocabulary of 200,000
   words, many of them addresses and codes: 2 tokens a word), and passages of real prose (the State of
   the Union addresses, from seeded random places). Each goes through what a run does before its first
   epoch: the tokenizer trained on 80% of them (the training rows), the cut chosen, then every text
   encoded into ``TokenRows`` and written to the token cache; then a warm run's read of the cache.
2. An epoch: the same model (each ``--family``, the defaults of ``mnist-train``) trained for one epoch on
   the spam-assassin bodies (the ``eval_texts.py`` split's training rows), two ways, alternated
   ``--repeats`` times in this process:
   * ours: ``TokenRows`` (ids computed once) in length-bucketed batches, as ``Trainer`` takes them;
   * the tutorial loop: a ``torch.utils.data.Dataset`` that tokenises its text in ``__getitem__``
     and a ``DataLoader`` (shuffled) whose ``collate_fn`` pads each batch to its longest text.
   Both run forward, loss, backward and AdamW steps with the same batch size, in float32.

Prints a Markdown table of seconds, and the epoch's speed ratio.
"""

from __future__ import annotations

import argparse
import itertools
import random
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_texts import REPO, sotu_texts, spam_texts, split  # noqa: E402

from mnist_classifier.data import tokens  # noqa: E402
from mnist_classifier.data.token_cache import CachedTexts  # noqa: E402
from mnist_classifier.kinds.texts import TEXT_DEFAULTS, TEXT_FAMILY_DEFAULTS, Text  # noqa: E402
from mnist_classifier.models import MODELS  # noqa: E402
from mnist_classifier.options import options_of  # noqa: E402


def word_texts(rows: list[tuple[str, str, str]], n: int, words: int, seed: int = 0) -> list[str]:
    """``n`` texts of ``words`` +- 50% words drawn from the bodies' words at their frequencies."""
    counts = Counter(w for _, _, text in rows for w in re.findall(r"\S+", text))
    vocabulary, weights = zip(*counts.most_common(200_000), strict=True)
    cumulative = list(itertools.accumulate(weights))
    rng = random.Random(seed)
    return [" ".join(rng.choices(vocabulary, cum_weights=cumulative, k=rng.randint(words // 2, 3 * words // 2)))
            for _ in range(n)]


def prose_texts(rows: list[tuple[str, str, str]], n: int, words: int, seed: int = 0) -> list[str]:
    """``n`` passages of ``words`` +- 50% consecutive words of real prose (the addresses), each from a
    seeded random place."""
    every = " ".join(text for _, _, text in rows).split()
    rng = random.Random(seed)
    texts = []
    for _ in range(n):
        length = rng.randint(words // 2, 3 * words // 2)
        start = rng.randrange(len(every) - length)
        texts.append(" ".join(every[start:start + length]))
    return texts


def time_tokenising(texts: list[str]) -> dict[str, float]:
    """A cold run's steps (the tokenizer fitted, every text encoded and cached), then a warm run's read."""
    n_train = int(0.8 * len(texts))
    with tempfile.TemporaryDirectory() as folder:
        cached = CachedTexts(texts, Path(folder))
        started = time.perf_counter()
        record = Text.fit(texts[:n_train])
        fitted = time.perf_counter()
        rows = record.prepare_rows(cached)
        encoded = time.perf_counter()
        record.prepare_rows(cached)
        warm = time.perf_counter()
    return {"fit (tokenizer and cut)": fitted - started, "encode every text and cache it": encoded - fitted,
            "in all": encoded - started, "a warm run: hash the texts, read the cache": warm - encoded,
            "tokens": float(len(rows.tokens)), "cache bytes per token": rows.tokens.nbytes / max(len(rows.tokens), 1)}


def build(record: Text, family: str, classes: int) -> nn.Module:
    options = {name: opt.default for name, opt in options_of(MODELS[family].Options).items()}
    options |= {k: v for k, v in TEXT_FAMILY_DEFAULTS.get(family, {}).items() if k in options}
    return record.family(family).build(record.input_shape, classes, True, **options)


class TokenisingDataset(torch.utils.data.Dataset):
    """The tutorial's way: each item tokenised when it is asked for."""

    def __init__(self, texts, labels, tokenizer, cut):
        self.texts, self.labels, self.tokenizer, self.cut = texts, labels, tokenizer, cut

    def __len__(self):
        return len(self.texts)

    def __getitem__(self, i):
        ids = self.tokenizer.encode(self.texts[i], add_special_tokens=False).ids[:self.cut]
        return torch.tensor(ids, dtype=torch.long), self.labels[i]


def pad_batch(items):
    texts, labels = zip(*items, strict=True)
    return nn.utils.rnn.pad_sequence(texts, batch_first=True, padding_value=tokens.PAD_ID), torch.tensor(labels)


def step(model, optimizer, crit, x, y) -> None:
    loss = crit(model(x), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def epoch_ours(model, optimizer, crit, rows, y, batch_size) -> float:
    started = time.perf_counter()
    model.train()
    for batch in rows.epoch_order(batch_size=batch_size).split(batch_size):
        if len(batch) > 1:
            step(model, optimizer, crit, rows[batch], y[batch])
    return time.perf_counter() - started


def epoch_tutorial(model, optimizer, crit, loader) -> float:
    started = time.perf_counter()
    model.train()
    for x, y in loader:
        if len(y) > 1:
            step(model, optimizer, crit, x, y)
    return time.perf_counter() - started


def time_epochs(family: str, repeats: int, cache: Path) -> dict[str, list[float]]:
    parts = split(spam_texts(cache, headers=False), seed=0)
    texts = [t for _, t in parts["train"]]
    classes = sorted({label for label, _ in parts["train"]})
    labels = [classes.index(label) for label, _ in parts["train"]]
    record = Text.fit(texts)
    rows, y = record.prepare_rows(texts), torch.tensor(labels)
    batch_size = TEXT_DEFAULTS["batch_size"]
    torch.manual_seed(0)
    loader = torch.utils.data.DataLoader(TokenisingDataset(texts, labels, record.tokenizer, record.values["cut"]),
                                         batch_size=batch_size, shuffle=True, collate_fn=pad_batch)
    times = {"ours": [], "tutorial": []}
    for _ in range(repeats):
        for way in times:
            torch.manual_seed(0)
            model = build(record, family, len(classes))
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
            crit = nn.NLLLoss()
            times[way].append(epoch_ours(model, optimizer, crit, rows, y, batch_size) if way == "ours"
                              else epoch_tutorial(model, optimizer, crit, loader))
            print(f"{family} epoch, {way}: {times[way][-1]:.1f}s", file=sys.stderr)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--texts", type=int, default=100_000)
    parser.add_argument("--words", type=int, default=200)
    parser.add_argument("--family", nargs="+", default=["linear", "mlp", "rnn", "cnn"],
                        choices=("linear", "mlp", "rnn", "cnn"))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=REPO / "data" / "bench_texts")
    parser.add_argument("--skip_epochs", action="store_true")
    parser.add_argument("--skip_tokenising", action="store_true")
    args = parser.parse_args()
    if not args.skip_tokenising:
        print_tokenising(args)
    if not args.skip_epochs:
        print_epochs(args)


def print_tokenising(args) -> None:
    sources = {"e-mail words": word_texts(spam_texts(args.cache, headers=False), args.texts, args.words),
               "prose": prose_texts(sotu_texts(args.cache), args.texts, args.words)}
    timings = {source: time_tokenising(texts) for source, texts in sources.items()}
    print(f"| {args.texts:,} texts of about {args.words} words | {' | '.join(sources)} |\n|---|---|---|")
    for step_name in timings["prose"]:
        values = [timings[source][step_name] for source in sources]
        shown = [f"{v:,.0f}" if step_name == "tokens" else f"{v:.2f}" if "bytes" in step_name else f"{v:.1f}"
                 for v in values]
        print(f"| {step_name} | {' | '.join(shown)} |")


def print_epochs(args) -> None:
    print(f"\n| one epoch on spam-bodies, median seconds of {args.repeats} | ours (TokenRows, bucketed) | tutorial "
          "(tokenise in __getitem__, pad per batch) | ours is ... as fast |\n|---|---|---|---|")
    for family in args.family:
        times = time_epochs(family, args.repeats, args.cache)
        ours, tutorial = np.median(times["ours"]), np.median(times["tutorial"])
        print(f"| {family} | {ours:.1f} | {tutorial:.1f} | {tutorial / ours:.2f}x |")


if __name__ == "__main__":
    main()
