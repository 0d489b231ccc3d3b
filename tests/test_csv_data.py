import pytest
import torch

from mnist_classifier.data.datasets import load_dataset
from mnist_classifier.errors import UserError


def write(tmp_path, text, name="data.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def table(rows: int = 40) -> str:
    lines = ["height,weight,species"]
    for i in range(rows):
        kind = ["cat", "dog"][i % 2]
        lines.append(f"{20 + i % 7 + (30 if kind == 'dog' else 0)},{3 + i % 3},{kind}")
    return "\n".join(lines) + "\n"


def test_csv_with_string_labels_gets_classes_and_standardised_features(tmp_path):
    dataset = load_dataset(f"csv:{write(tmp_path, table())}").prepared()
    assert dataset.classes == ["cat", "dog"] and dataset.feature_names == ["height", "weight"]
    (x_train, _), (x_test, y_test) = dataset.train, dataset.test
    assert len(x_train) == 32 and len(x_test) == 8 and set(y_test.tolist()) == {0, 1}
    torch.testing.assert_close(x_train.mean(dim=0), torch.zeros(2), atol=1e-5, rtol=0)


def test_target_column_by_name_and_integer_labels_in_numeric_order(tmp_path):
    text = "label,a,b\n" + "".join(f"{[10, 9, 2][i % 3]},{i},{i % 5}\n" for i in range(30))
    dataset = load_dataset(f"csv:{write(tmp_path, text)}", target="label")
    assert dataset.classes == ["2", "9", "10"] and dataset.input_shape == (2,)


def test_separate_test_file_and_regression(tmp_path):
    rows = "".join(f"{i},{2 * i + 1}\n" for i in range(20))
    train = write(tmp_path, "x,y\n" + rows)
    test = write(tmp_path, "x,y\n" + rows[:40], name="test.csv")
    dataset = load_dataset(f"csv:{train}", test_csv=str(test), task="regression").prepared()
    assert dataset.task == "regression" and len(dataset.train[0]) == 20
    assert dataset.train[1].shape == (20, 1) and dataset.train[1].dtype == torch.float32
    assert dataset.preprocessing["y_mean"] == pytest.approx(20.0)
    assert dataset.train[1].mean().item() == pytest.approx(0.0, abs=1e-5)  # targets standardised for training


@pytest.mark.parametrize(
    "text, options, message",
    [
        ("", {}, "the file is empty"),
        ("a,b\n", {}, "no data rows"),
        ("a,b\n1,x\n2,y\n", {"target": "c"}, "no column 'c'"),
        ("a,b\n1,x\none,y\n", {}, "line 3, column 'a': 'one' is not a number"),
        ("a,b\n1,x\n2,x\n3,x\n", {}, "single class"),
        ("a,b\n1,x\n,y\n3,x\n", {}, "line 3, column 'a': empty or NaN cell"),
        ("a,b\n1,x\nnan,y\n3,x\n", {}, "line 3, column 'a': empty or NaN cell"),
        ("a,b\n1,x\n2\n", {}, "line 3: 1 cells, but the header has 2"),
        ("a,b\n1,2\n2,many\n", {"task": "regression"}, "line 3, column 'b': 'many' is not a number"),
    ],
)
def test_bad_files_are_refused_naming_line_and_column(tmp_path, text, options, message):
    path = write(tmp_path, text)
    with pytest.raises(UserError, match=f"data.csv.*{message}"):
        load_dataset(f"csv:{path}", **options)


def test_drop_na_drops_the_incomplete_rows(tmp_path):
    text = "a,b\n" + "".join(f"{'' if i == 3 else i},{'x' if i % 2 else 'y'}\n" for i in range(20))
    dataset = load_dataset(f"csv:{write(tmp_path, text)}", drop_na=True)
    assert len(dataset.train[0]) + len(dataset.test[0]) == 19


def test_missing_file_is_named(tmp_path):
    with pytest.raises(UserError, match="nothing.csv: no such CSV file"):
        load_dataset(f"csv:{tmp_path / 'nothing.csv'}")
