"""How does ``mnist-train`` with its DEFAULT flags do on small tables, next to scikit-learn's defaults?

    python benchmarks/eval_tables.py [--seeds 0 1 2] [--datasets iris diabetes] [--variants complete random]
                                     [--extra="--n_epochs 50"] [--json results.json]

Seven tables: iris, breast_cancer, digits (its 8x8 images as 64 numeric columns), diabetes (regression),
make_classification and make_regression (5000 rows each), and text_columns: a generated classification
table with numeric and text columns (see text_table).

Each table comes in three variants (``--variants``): complete; ``random``, with 15% of the feature
cells blanked at random; and ``high``, with the 15% highest cells of each number column blanked (and,
in text and yes/no columns, the cells of the rows whose first number is among its highest 15%):
gaps that say something about the value, where a "was missing" input matters.

For each table, variant and seed there is ONE train/test split (80/20, stratified for classification), written to
CSV files that every model reads, so all of them see the same rows:

* ours: ``python -m mnist_classifier.cli.train --dataset csv:TRAIN --test_csv TEST`` (plus ``--task
  regression``) and no other flags but those of --extra. It holds back its default share of TRAIN for
  validation, as a user's run would. Its time is the whole command's wall clock (start-up included).
* scikit-learn, with each model's default arguments (and random_state=seed), fitted on all of TRAIN:
  LogisticRegression / Ridge, MLPClassifier / MLPRegressor, HistGradientBoostingClassifier / Regressor.
  Number columns go through SimpleImputer(strategy="median", add_indicator=True) and a StandardScaler
  (for HistGradientBoosting: as they are, NaN included, which it handles itself); text columns through
  SimpleImputer(strategy="constant") and OneHotEncoder(handle_unknown="ignore"). On complete tables the
  imputers change nothing.
  Convergence warnings are silenced (the MLP's default max_iter often stops short): the defaults are
  the point.

Prints a Markdown table (test accuracy % or R^2: the mean over seeds [min, max]), then a summary line;
progress goes to stderr. A run of ours that fails shows its error instead of a score, and the rest go on.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import sklearn
from sklearn.compose import ColumnTransformer
from sklearn.datasets import (
    load_breast_cancer,
    load_diabetes,
    load_digits,
    load_iris,
    make_classification,
    make_regression,
)
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

REPO = Path(__file__).resolve().parents[1]
CLASSIFICATION, REGRESSION = "classification", "regression"
SKLEARN_NAMES = ["LogReg/Ridge", "MLP", "HGB"]
# The summary's margins, in accuracy points or R^2: "close to the best", and "tied with it".
CLOSE = {CLASSIFICATION: 1.0, REGRESSION: 0.02}
TIED = {CLASSIFICATION: 0.1, REGRESSION: 0.002}
# What ours prints last: "Test accuracy: 96.67% (30 rows)" or "Test RMSE: 53.2  R^2: 0.4512 (89 rows)".
SCORE_PATTERNS = {CLASSIFICATION: re.compile(r"Test accuracy: ([\d.]+)%"),
                  REGRESSION: re.compile(r"R\^2: (\S+)")}


def text_table(n_rows: int, seed: int) -> pd.DataFrame:
    """A made-up shop's customers, and whether each ``bought`` (0 or 1, the last column).

    Numeric columns (age, income in thousands, visits), a yes/no column (member), a city (6 values) and a
    product code (300 codes, "P0000" to "P0299"). Each code belongs to one of 12 hidden groups that moves
    the label, so a model has to learn the codes from their rows (about 13 each in 4000). The label mixes
    all of these, age non-linearly, plus logistic noise, so that no model can reach 100%.
    """
    rng = np.random.default_rng(seed)
    cities = np.array(["Lyon", "Oslo", "Porto", "Riga", "Turin", "Zagreb"])
    city_effect = np.array([0.8, -0.6, 0.3, -0.2, 0.0, -0.5])
    codes = np.array([f"P{i:04d}" for i in range(300)])
    group_of_code = rng.integers(0, 12, size=len(codes))
    group_effect = rng.normal(0.0, 1.2, size=12)

    age = rng.integers(18, 80, size=n_rows)
    income = np.round(rng.lognormal(np.log(45), 0.5, size=n_rows), 1)
    visits = rng.poisson(3, size=n_rows)
    member = rng.random(n_rows) < 0.3
    city = rng.choice(len(cities), size=n_rows, p=[0.3, 0.2, 0.2, 0.1, 0.1, 0.1])
    code = rng.integers(0, len(codes), size=n_rows)

    # Buyers peak around 40; income counts on a log scale.
    logit = (1.0 - 0.002 * (age - 40) ** 2 + 1.0 * np.log(income / 45) + 0.25 * (visits - 3) + 0.9 * member
             + city_effect[city] + group_effect[group_of_code[code]])
    # Noise at half the standard logistic's scale: the true logit alone would score about 83%.
    bought = (logit + rng.logistic(scale=0.5, size=n_rows) > 0).astype(int)
    return pd.DataFrame({"age": age, "income": income, "visits": visits, "member": np.where(member, "yes", "no"),
                         "city": cities[city], "product": codes[code], "bought": bought})


def loans_table(n_rows: int, seed: int) -> pd.DataFrame:
    """Loans as they come (docs/tables.md's second walk-through): an ``id``, an education whose real
    levels include ``none``, a region whose levels include ``NA`` (North America), and about 10% of
    the income, owner and education cells left empty. Whether each was ``repaid`` is the last column."""
    rng = np.random.default_rng(seed)
    education = rng.choice(["none", "school", "college", "degree"], n_rows)
    region = rng.choice(["NA", "EU", "AS"], n_rows)
    income = np.round(rng.lognormal(3.5, 0.5, n_rows), 1)
    owner = rng.choice(["yes", "no"], n_rows)
    score = pd.Series(education).map({"none": -1.0, "school": 0.0, "college": 0.5, "degree": 1.0}).to_numpy()
    logit = score + 0.8 * (region == "NA") + np.log(income / 33) + 0.5 * (owner == "yes")
    repaid = logit + rng.logistic(scale=0.4, size=n_rows) > 0
    frame = pd.DataFrame({"id": np.arange(1, n_rows + 1), "income": income, "owner": owner, "education": education,
                          "region": region, "repaid": np.where(repaid, "yes", "no")})
    for column in ("income", "owner", "education"):
        frame[column] = frame[column].astype(object)
        frame.loc[rng.random(n_rows) < 0.1, column] = None
    return frame


def wages_table(n_rows: int, seed: int) -> pd.DataFrame:
    """Hourly wages as a labour survey gives them (shaped like the SLID table of R's carData): years of
    education with a fraction, age in whole years, sex and language as words, about 10% of the
    education and language cells empty, and ``wages`` (dollars and cents, some whole) last."""
    rng = np.random.default_rng(seed)
    education = np.round(np.clip(rng.normal(13, 3, n_rows), 0, 20), 1)
    age = rng.integers(16, 66, n_rows)
    sex = rng.choice(["Male", "Female"], n_rows)
    language = rng.choice(["English", "French", "Other"], n_rows, p=[0.7, 0.2, 0.1])
    log_wage = (1.0 + 0.07 * education + 0.09 * age - 0.001 * age**2 + 0.25 * (sex == "Male")
                - 0.05 * (language == "Other") + rng.normal(0, 0.35, n_rows))
    wages = np.round(np.exp(log_wage), 2)
    whole = rng.random(n_rows) < 0.15
    wages[whole] = np.round(wages[whole])  # some answers are whole dollars
    frame = pd.DataFrame({"education": education, "age": age, "sex": sex, "language": language, "wages": wages})
    for column in ("education", "language"):
        frame[column] = frame[column].astype(object)
        frame.loc[rng.random(n_rows) < 0.1, column] = None
    return frame


def csv_safe(name: str) -> str:
    """'sepal length (cm)' -> 'sepal_length_cm': column names that need no quoting anywhere."""
    return re.sub(r"[^0-9A-Za-z]+", "_", str(name)).strip("_")


def bunch_frame(bunch) -> pd.DataFrame:
    """One of scikit-learn's bundled sets as a table, the target last."""
    frame = pd.DataFrame(bunch.data, columns=[csv_safe(name) for name in bunch.feature_names])
    frame["target"] = bunch.target
    return frame


def generated_frame(x: np.ndarray, y: np.ndarray) -> pd.DataFrame:
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(x.shape[1])])
    frame["target"] = y
    return frame


# name: (task, a function that makes the whole table, target last). Each table is the same on every run:
# only the train/test split changes with the seed.
DATASETS = {
    "iris": (CLASSIFICATION, lambda: bunch_frame(load_iris())),
    "breast_cancer": (CLASSIFICATION, lambda: bunch_frame(load_breast_cancer())),
    "digits": (CLASSIFICATION, lambda: bunch_frame(load_digits())),
    "diabetes": (REGRESSION, lambda: bunch_frame(load_diabetes())),
    "make_classification": (CLASSIFICATION,
                            lambda: generated_frame(*make_classification(n_samples=5000, n_informative=8,
                                                                         random_state=0))),
    "make_regression": (REGRESSION,
                        lambda: generated_frame(*make_regression(n_samples=5000, noise=10, random_state=0))),
    "text_columns": (CLASSIFICATION, lambda: text_table(4000, seed=0)),
}


GAP_SHARE = 0.15


def blank_random(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """GAP_SHARE of the feature cells (every column but the last) emptied at random."""
    rng = np.random.default_rng(1000 + seed)
    blanked = frame.astype({name: object for name in frame.columns[:-1]})
    for name in frame.columns[:-1]:
        blanked.loc[rng.random(len(frame)) < GAP_SHARE, name] = None
    return blanked


def blank_high(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Each number column's GAP_SHARE highest cells emptied (ties in a random order); in text columns
    the cells of the rows whose first number column is among its highest."""
    rng = np.random.default_rng(2000 + seed)
    blanked = frame.astype({name: object for name in frame.columns[:-1]})
    numbers = [name for name in frame.columns[:-1] if pd.api.types.is_numeric_dtype(frame[name])]

    def highest(name: str) -> np.ndarray:
        jitter = rng.random(len(frame))  # ties (many zeros in digits) broken at random
        order = np.lexsort((jitter, frame[name].to_numpy()))
        return order[-int(round(GAP_SHARE * len(frame))):]

    for name in frame.columns[:-1]:
        rows = highest(name if name in numbers else numbers[0])
        blanked.iloc[rows, frame.columns.get_loc(name)] = None
    return blanked


VARIANTS = {"complete": None, "random": blank_random, "high": blank_high}


def write_split(frame: pd.DataFrame, task: str, seed: int, folder: Path) -> tuple[Path, Path]:
    """The one train/test split every model of this seed uses, as train.csv and test.csv in folder."""
    stratify = frame.iloc[:, -1] if task == CLASSIFICATION else None
    train, test = train_test_split(frame, test_size=0.2, random_state=seed, stratify=stratify)
    train_csv, test_csv = folder / "train.csv", folder / "test.csv"
    train.to_csv(train_csv, index=False)
    test.to_csv(test_csv, index=False)
    return train_csv, test_csv


def error_line(stderr: str) -> str:
    """The line that says what went wrong: the CLI's one-line error, or a traceback's last line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    if not lines:
        return ""
    return lines[-1] if lines[0].startswith("Traceback") else lines[0]


def run_ours(train_csv: Path, test_csv: Path, task: str, seed: int, extra: list[str]) -> dict:
    command = [sys.executable, "-m", "mnist_classifier.cli.train", "--dataset", f"csv:{train_csv}",
               "--test_csv", str(test_csv), "--model_fn", str(train_csv.parent / "model.pth"),
               "--seed", str(seed), "--verbose", "0"]
    if task == REGRESSION:
        command += ["--task", "regression"]
    started = time.perf_counter()
    done = subprocess.run(command + extra, cwd=REPO, capture_output=True, text=True)  # cwd: this checkout's code
    seconds = time.perf_counter() - started
    found = SCORE_PATTERNS[task].search(done.stdout)
    if done.returncode != 0 or found is None:
        error = error_line(done.stderr) or f"exit status {done.returncode}, no test score printed"
        # The temporary folder's name changes every run and says nothing: keep the file names only.
        error = error.replace(str(train_csv.parent) + "/", "")
        return {"score": None, "seconds": seconds, "error": error}
    return {"score": float(found.group(1)), "seconds": seconds, "error": None}


def sklearn_models(task: str, seed: int) -> dict:
    if task == CLASSIFICATION:
        return {"LogReg/Ridge": LogisticRegression(random_state=seed), "MLP": MLPClassifier(random_state=seed),
                "HGB": HistGradientBoostingClassifier(random_state=seed)}
    return {"LogReg/Ridge": Ridge(random_state=seed), "MLP": MLPRegressor(random_state=seed),
            "HGB": HistGradientBoostingRegressor(random_state=seed)}


def preprocessor(x: pd.DataFrame, model_name: str):
    """Number columns imputed (median, with was-missing indicators) and scaled; text columns imputed
    and one-hot. HistGradientBoosting gets the numbers as they are, NaN included."""
    text_columns = [column for column in x.columns if not pd.api.types.is_numeric_dtype(x[column])]
    numeric_columns = [column for column in x.columns if column not in text_columns]
    numbers = "passthrough" if model_name == "HGB" else make_pipeline(
        SimpleImputer(strategy="median", add_indicator=True), StandardScaler())
    # Dense output: HistGradientBoosting does not take sparse matrices.
    text = make_pipeline(SimpleImputer(strategy="constant", fill_value="(missing)"),
                         OneHotEncoder(handle_unknown="ignore", sparse_output=False))
    return ColumnTransformer([("text", text, text_columns), ("numeric", numbers, numeric_columns)])


def run_sklearn(train_csv: Path, test_csv: Path, task: str, seed: int) -> dict[str, dict]:
    """Each scikit-learn model's test score and fit+predict seconds, trained on the rows ours got."""
    # Empty cells only are gaps: a text level "NA" stays a word, as in ours.
    train, test = (pd.read_csv(path, keep_default_na=False, na_values=[""]) for path in (train_csv, test_csv))
    x, y = train.iloc[:, :-1], train.iloc[:, -1]
    x_test, y_test = test.iloc[:, :-1], test.iloc[:, -1]
    results = {}
    for name, model in sklearn_models(task, seed).items():
        started = time.perf_counter()
        predicted = make_pipeline(preprocessor(x, name), model).fit(x, y).predict(x_test)
        seconds = time.perf_counter() - started
        score = 100 * accuracy_score(y_test, predicted) if task == CLASSIFICATION else r2_score(y_test, predicted)
        results[name] = {"score": float(score), "seconds": seconds, "error": None}
    return results


def run_dataset(name: str, variant: str, seeds: list[int], extra: list[str]) -> list[dict]:
    """One record per seed and model: dataset, variant, task, seed, model, score, seconds, error."""
    task, make_frame = DATASETS[name]
    complete = make_frame()
    records = []
    for seed in seeds:
        frame = complete if VARIANTS[variant] is None else VARIANTS[variant](complete, seed)
        with tempfile.TemporaryDirectory() as tmp:
            train_csv, test_csv = write_split(frame, task, seed, Path(tmp))
            results = {"ours": run_ours(train_csv, test_csv, task, seed, extra)}
            results.update(run_sklearn(train_csv, test_csv, task, seed))
        for model, result in results.items():
            records.append({"dataset": name, "variant": variant, "task": task, "seed": seed, "model": model,
                            **result})
        scores = ", ".join(f"{model} {format_score(r['score'], task) if r['error'] is None else 'error'}"
                           for model, r in results.items())
        print(f"{name} ({variant}) seed {seed}: {scores}; ours took {results['ours']['seconds']:.1f} s",
              file=sys.stderr, flush=True)
    return records


def format_score(value: float, task: str) -> str:
    return f"{value:.2f}" if task == CLASSIFICATION else f"{value:.3f}"


def format_gap(value: float, task: str) -> str:
    return f"{value:+.2f}" if task == CLASSIFICATION else f"{value:+.3f}"


def mean_score(runs: list[dict]) -> float | None:
    """The mean over the seeds that succeeded; None when none did."""
    scores = [run["score"] for run in runs if run["error"] is None]
    return statistics.mean(scores) if scores else None


def score_cell(runs: list[dict], task: str) -> str:
    """'96.67 [95.00, 98.33]' (mean [min, max] over seeds), or the error when every seed failed."""
    scores = [run["score"] for run in runs if run["error"] is None]
    errors = [run["error"] for run in runs if run["error"] is not None]
    if not scores:
        return "error: " + errors[0][:160].replace("|", "\\|")  # a bare | would end the Markdown cell
    cell = format_score(statistics.mean(scores), task)
    if len(scores) > 1:
        cell += f" [{format_score(min(scores), task)}, {format_score(max(scores), task)}]"
    if errors:
        cell += f" ({len(errors)} of {len(runs)} seeds failed)"
    return cell


def summarize(name: str, variant: str, records: list[dict]) -> dict:
    """One dataset's (variant's) means, its best scikit-learn model, and our slowest run."""
    task = DATASETS[name][0]
    runs = {model: [r for r in records if (r["dataset"], r["variant"], r["model"]) == (name, variant, model)]
            for model in ["ours", *SKLEARN_NAMES]}
    sklearn_means = {model: mean_score(runs[model]) for model in SKLEARN_NAMES}
    best = max(SKLEARN_NAMES, key=lambda model: sklearn_means[model])
    return {"name": name, "variant": variant, "task": task, "runs": runs, "ours": mean_score(runs["ours"]),
            "sklearn": sklearn_means, "best": best, "ours_max_s": max(r["seconds"] for r in runs["ours"])}


def print_table(summaries: list[dict]) -> None:
    print("| dataset | gaps | metric | ours | " + " | ".join(SKLEARN_NAMES) + " | best sklearn | ours - best | "
          "ours max s |")
    print("| --- | --- | --- | --- | " + " | ".join("---" for _ in SKLEARN_NAMES) + " | --- | --- | --- |")
    for s in summaries:
        task = s["task"]
        cells = [score_cell(s["runs"][model], task) for model in ["ours", *SKLEARN_NAMES]]
        best_score = s["sklearn"][s["best"]]
        gap = "-" if s["ours"] is None else format_gap(s["ours"] - best_score, task)
        metric = "accuracy %" if task == CLASSIFICATION else "R^2"
        print(f"| {s['name']} | {s['variant']} | {metric} | {' | '.join(cells)} | {s['best']} "
              f"{format_score(best_score, task)} | {gap} | {s['ours_max_s']:.1f} |")


def print_summary(summaries: list[dict], records: list[dict]) -> None:
    """Per variant: how many sets ours is close to, level with, or ahead of scikit-learn; a failed run
    counts as behind."""
    print()
    for variant in dict.fromkeys(s["variant"] for s in summaries):
        chosen = [s for s in summaries if s["variant"] == variant]
        scored = [s for s in chosen if s["ours"] is not None]
        close = sum(s["ours"] >= s["sklearn"][s["best"]] - CLOSE[s["task"]] for s in scored)
        beats_mlp = sum(s["ours"] > s["sklearn"]["MLP"] for s in scored)
        best = sum(s["ours"] >= s["sklearn"][s["best"]] - TIED[s["task"]] for s in scored)
        n, failed = len(chosen), len(chosen) - len(scored)
        print(f"{variant}: ours is within {CLOSE[CLASSIFICATION]:g} point / {CLOSE[REGRESSION]:g} R^2 of the best "
              f"scikit-learn model on {close} of {n} sets; beats scikit-learn's MLP on {beats_mlp} of {n}; is best or "
              f"tied-best (within {TIED[CLASSIFICATION]:g} point / {TIED[REGRESSION]:g} R^2) on {best} of {n}"
              f"{f' ({failed} failed on every seed)' if failed else ''}.")
    slowest = max((r for r in records if r["model"] == "ours"), key=lambda r: r["seconds"])
    print(f"Slowest training run of ours: {slowest['seconds']:.1f} s ({slowest['dataset']}, {slowest['variant']}, "
          f"seed {slowest['seed']}).")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--datasets", nargs="+", choices=list(DATASETS), default=list(DATASETS))
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--extra", metavar="FLAGS", default="",
                        help='flags added to every run of ours, as one string: --extra "--n_epochs 50 --lr 3e-3"; '
                             "a single flag needs the = form: --extra=--no-amp")
    parser.add_argument("--json", metavar="PATH", help="also write every per-seed result here")
    args = parser.parse_args()
    extra = shlex.split(args.extra)
    # Not raising max_iter is deliberate (defaults against defaults); the warnings would bury the table.
    warnings.filterwarnings("ignore", category=ConvergenceWarning)

    records = []
    for variant in args.variants:
        for name in args.datasets:
            records += run_dataset(name, variant, args.seeds, extra)
    summaries = [summarize(name, variant, records) for variant in args.variants for name in args.datasets]

    print(f"\nscikit-learn {sklearn.__version__}, seeds {' '.join(map(str, args.seeds))}, "
          f"our flags: defaults{' + ' + shlex.join(extra) if extra else ''}")
    print_table(summaries)
    print_summary(summaries, records)
    if args.json:
        Path(args.json).write_text(json.dumps({"seeds": args.seeds, "extra": extra, "results": records}, indent=1))


if __name__ == "__main__":
    main()
