import os

import pytest
import torch

from mnist_classifier.data.csv_data import read_rows
from mnist_classifier.errors import UserError
from mnist_classifier.kinds import load_dataset


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
        ("a,b\n1,\n2, \n", {}, "no row has a value in the target column 'b'"),
        ("a,b\n1,x\n2,y\n", {"text_columns": "zz"}, "--text_columns zz: no such column"),
        ("a,b\n1,x\n2,y\n", {"ignore_columns": "b"}, "--ignore_columns b: that is the target column"),
        ("a,b\n,x\n,y\n", {}, "no feature column is left"),
        ("a,b\n1,x\n2\n", {}, "line 3: 1 cells, but the header has 2"),
        ("a,b\n1,2\n2,many\n", {"task": "regression"}, "line 3, column 'b': 'many' is not a number"),
        ("y,x,y\n1,2,3\n4,5,6\n", {}, "line 1: the column name 'y' appears more than once"),
        (",,\n1,2,3\n4,5,6\n", {}, "line 1: column 1 has no name"),
        ("a,b\n1,2\n2,cat\n", {"task": "regression"}, r"'cat' is not a number \(a regression target must be"),
        ("a,b\n1,x\n3.5e38,y\n", {}, "line 3, column 'a': '3.5e\\+?38' is beyond what 32-bit floats hold"),
        ("a,b\n1,2\n2,-4e38\n", {"task": "regression"}, "line 3, column 'b': '-4e\\+?38' is beyond"),
        ("a,b\n" + "".join(f"{i},7.5\n" for i in range(20)), {"task": "regression"},
         "the target is 7.5 in every row; there is nothing to learn"),
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


def test_numeric_labels_written_differently_are_one_class(tmp_path):
    text = "a,label\n" + "".join(f"{i},{['1', '1.0', '01', '2', '2.00'][i % 5]}\n" for i in range(30))
    dataset = load_dataset(f"csv:{write(tmp_path, text)}")
    assert dataset.classes == ["1", "2"]
    assert torch.bincount(torch.cat([dataset.train[1], dataset.test[1]])).tolist() == [18, 12]


def test_a_file_without_read_permission_is_one_line(tmp_path):
    path = write(tmp_path, "a,b\n1,x\n2,y\n")
    path.chmod(0o000)
    # Permissions bind everyone but root: read it as an ordinary user, in a child process.
    read, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read)
            if os.getuid() == 0:
                os.setgid(65534)
                os.setuid(65534)
            try:
                load_dataset(f"csv:{path}")
                message = "loaded"
            except UserError as e:
                message = str(e)
            except BaseException as e:  # a traceback in the parent's words
                message = f"{type(e).__name__}: {e}"
            os.write(write_end, message.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    with os.fdopen(read) as f:
        message = f.read()
    assert message.startswith(str(tmp_path)) and "Permission denied" in message and "Error:" not in message


def test_values_near_the_float32_limit_are_standardised_without_overflow(tmp_path):
    rows = "".join(f"{(-1) ** i * 3e38},{i},{(-1) ** (i // 2) * 3e38}\n" for i in range(20))
    dataset = load_dataset(f"csv:{write(tmp_path, 'a,b,t' + chr(10) + rows)}", task="regression").prepared()
    for x, y in (dataset.train, dataset.test):
        assert torch.isfinite(x).all() and torch.isfinite(y).all() and x.abs().max() < 10


def test_long_integer_codes_stay_distinct_classes(tmp_path):
    codes = ["9007199254740992", "9007199254740993"]  # equal as float64
    text = "a,code\n" + "".join(f"{i},{codes[i % 2]}\n" for i in range(20))
    assert load_dataset(f"csv:{write(tmp_path, text)}").classes == codes


@pytest.mark.parametrize("delimiter", [",", ";"])
def test_a_header_longer_than_the_sniffing_sample_is_read_whole(tmp_path, delimiter):
    # 12,000 columns: a 64 KB sample cut the header, and a cut name could repeat a whole one.
    names = [f"f{i}" for i in range(12_000)]
    rows = [delimiter.join(str((i * j) % 7) for j in range(len(names))) + f"{delimiter}{'ab'[i % 2]}" for i in range(6)]
    path = write(tmp_path, delimiter.join([*names, "label"]) + "\n" + "\n".join(rows) + "\n")
    assert path.stat().st_size > 2 * 64 * 1024
    frame = read_rows(path)  # CsvTable.read, which training shares
    assert list(frame.columns) == [*names, "label"] and frame["label"].tolist() == ["a", "b"] * 3


def test_a_first_line_beyond_the_header_limit_says_so(tmp_path, monkeypatch):
    from mnist_classifier.data import csv_data

    monkeypatch.setattr(csv_data, "MAX_HEADER_BYTES", 256 * 1024)
    path = write(tmp_path, ",".join(f"column{i}" for i in range(40_000)) + ",label\n1,a\n")
    with pytest.raises(UserError, match="its first line, the header, is longer than"):
        load_dataset(f"csv:{path}")


def test_a_long_first_line_is_searched_for_its_end_once(tmp_path, monkeypatch):
    # Each 64 KB read searched all the text read so far: 15 MB took 8 s. Count the characters searched.
    from mnist_classifier.data import csv_data

    searched = []

    class Counting:
        def search(self, text):
            searched.append(len(text))
            return csv_data.LINE_BREAK_SEARCHED.search(text)

        def finditer(self, text):
            return csv_data.LINE_BREAK_SEARCHED.finditer(text)

    monkeypatch.setattr(csv_data, "LINE_BREAK_SEARCHED", csv_data.LINE_BREAK, raising=False)
    monkeypatch.setattr(csv_data, "LINE_BREAK", Counting())
    size = 4 * 1024 * 1024
    monkeypatch.setattr(csv_data, "MAX_HEADER_BYTES", size)
    path = write(tmp_path, "a" * (size + 1024 * 1024))
    with pytest.raises(UserError, match="its first line, the header, is longer than"):
        load_dataset(f"csv:{path}")
    assert sum(searched) < 2 * size


@pytest.mark.parametrize("before", [64 * 1024 - 1, 64 * 1024, 2 * 64 * 1024 - 1])
def test_a_line_break_split_across_reads_ends_the_header(tmp_path, before):
    path = tmp_path / "data.csv"
    path.write_bytes(b"a" * (before - 2) + b",b\r\n1,2\r\n3,4\r\n")
    frame = read_rows(path)
    assert list(frame.columns) == ["a" * (before - 2), "b"] and frame["b"].tolist() == ["2", "4"]


def test_a_column_name_longer_than_csvs_field_limit_is_read(tmp_path):
    name = "n" * 200_000  # csv's default field limit is 131,072 characters
    path = tmp_path / "long.csv"
    path.write_text(f"{name},label\n" + "".join(f"{i},{i % 2}\n" for i in range(40)))
    assert list(read_rows(path).columns)[0] == name
