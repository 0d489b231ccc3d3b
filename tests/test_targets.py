"""A table's target read as classes or amounts: inferred from its values, said in one line, and
overridden by --task; a wages table trains as regression with default flags."""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.metrics import r2_score

from mnist_classifier.cli.train import main as train_main
from mnist_classifier.data.csv_data import load_csv
from mnist_classifier.data.targets import infer_task
from mnist_classifier.errors import UserError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from eval_tables import wages_table  # noqa: E402


def cells(values) -> pd.Series:
    return pd.Series([str(v) for v in values], dtype=object)


@pytest.mark.parametrize("values, task", [
    (["10.56", "11", "9.25", "12.5"] * 10, "regression"),  # wages: fractions
    (list(range(10)) * 20, "classification"),  # digit codes
    (list(range(1, 6)) * 3, "classification"),  # a handful of whole numbers, few rows
    (list(range(18, 91)) * 40, "regression"),  # ages: 73 whole numbers, not codes from 0 or 1
    (list(range(100)) * 20, "classification"),  # 100 codes 0..99, 20 rows each (CIFAR-100's labels)
    (list(range(100)) * 5, "regression"),  # the same codes in 500 rows: amounts
    (["cat", "dog", "7"] * 5, "classification"),
])
def test_the_task_follows_the_targets_values(values, task):
    found, said = infer_task("y", cells(values))
    assert found == task
    if all(str(v).replace(".", "").isdigit() for v in values):
        other = "classification" if task == "regression" else "regression"
        assert said.startswith("target y: ") and f"--task {other}" in said
        assert f"({len(set(map(str, values))):,} distinct values in {len(values):,} rows)" in said
    else:
        assert said is None  # text is plainly classes: nothing to say


def test_decimal_commas_are_fractions():
    assert infer_task("p", cells(["3,50", "4,25", "5"] * 5), decimal=",")[0] == "regression"


def test_a_wages_file_is_regression_said_first_and_its_test_file_has_new_amounts(tmp_path):
    frame = wages_table(600, seed=1)
    frame.iloc[:400].to_csv(tmp_path / "train.csv", index=False)
    frame.iloc[400:].to_csv(tmp_path / "test.csv", index=False)
    dataset = load_csv(tmp_path / "train.csv", target="wages", test_csv=tmp_path / "test.csv")
    assert dataset.task == "regression"
    assert dataset.notes[0].startswith("target wages: numbers (")
    assert dataset.notes[0].endswith("-> regression; --task classification to treat them as classes")
    assert dataset.test[1].shape == (200, 1)
    # Asked for classes, the unseen amount in the test file is refused as before
    with pytest.raises(UserError, match="test.csv: class '.*' does not occur in the training data"):
        load_csv(tmp_path / "train.csv", target="wages", test_csv=tmp_path / "test.csv", task="classification")


def test_a_stray_word_in_an_amount_target_is_refused_by_line(tmp_path):
    rows = [f"{i},{i * 1.25:.2f}" for i in range(40)] + ["40,unknown"]
    (tmp_path / "w.csv").write_text("a,wage\n" + "\n".join(rows) + "\n")
    with pytest.raises(UserError, match="line 42, column 'wage': 'unknown' is not a number"):
        load_csv(tmp_path / "w.csv")


def test_classes_nearly_as_many_as_rows_are_said(tmp_path):
    rows = [f"{i},{i * 1.25:.2f}" for i in range(60)]
    (tmp_path / "w.csv").write_text("a,wage\n" + "\n".join(rows) + "\n")
    dataset = load_csv(tmp_path / "w.csv", task="classification")
    assert len(dataset.classes) == 60
    assert any("the target has 60 classes in 60 rows, about one row a class" in note for note in dataset.notes)
    names = [f"{i},person{i}" for i in range(60)]  # text labels, one a row: an ID-like target
    (tmp_path / "n.csv").write_text("a,name\n" + "\n".join(names) + "\n")
    assert any("60 classes in 60 rows" in note for note in load_csv(tmp_path / "n.csv").notes)
    assert not any("classes in" in note for note in load_csv(tmp_path / "w.csv").notes)  # inferred: regression


def test_a_wages_table_with_gaps_trains_as_regression_near_gradient_boosting(tmp_path, capsys):
    frame = wages_table(3317 + 2000, seed=0)
    train, test = frame.iloc[:3317], frame.iloc[3317:]
    train.to_csv(tmp_path / "train.csv", index=False)
    test.to_csv(tmp_path / "test.csv", index=False)
    train_main(["--dataset", f"csv:{tmp_path / 'train.csv'}", "--test_csv", str(tmp_path / "test.csv"),
                "--target", "wages", "--model_fn", str(tmp_path / "w.pth"), "--seed", "0", "--verbose", "0"])
    out, err = capsys.readouterr()
    assert "target wages: numbers (" in err and "rows) -> regression" in err
    r2 = float(out.split("R^2: ")[1].split()[0])
    assert "Test RMSE: " in out

    def encoded(rows):  # scikit-learn's side: categories as codes, gaps as NaN, which it splits on
        x = rows.drop(columns="wages").copy()
        for column in ("sex", "language"):
            x[column] = pd.Categorical(x[column], categories=sorted(frame[column].dropna().unique())).codes
            x[column] = x[column].where(x[column] >= 0, np.nan)
        return x.astype(float)

    boosting = HistGradientBoostingRegressor(random_state=0, categorical_features=[2, 3])
    boosting.fit(encoded(train), train["wages"])
    best = r2_score(test["wages"], boosting.predict(encoded(test)))
    print(f"R^2 ours {r2:.4f}, HistGradientBoosting {best:.4f}")
    assert r2 >= best - 0.02, (r2, best)
