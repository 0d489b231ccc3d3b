"""What mnist-predict --out writes: never over a file of the user's, never a cell a spreadsheet would
run, and readable again as an input."""

import csv

import pytest
import torch

from mnist_classifier.cli import predict as predict_cli
from mnist_classifier.cli.train import main as train_main
from mnist_classifier.data.csv_data import as_written, read_rows, spreadsheet_safe
from mnist_classifier.errors import SaveFailed
from mnist_classifier.files import write_with_receipt

from .conftest import render_digit


@pytest.fixture(scope="module")
def formula_model(tmp_path_factory):
    """A table model whose class names and text levels start like spreadsheet formulas."""
    folder = tmp_path_factory.mktemp("formula")
    rows = "".join(f"{(i % 5) - 2.5},{'=a' if i % 2 else '-'},{'=cmd' if i % 2 else '@plain'}\n" for i in range(60))
    (folder / "train.csv").write_text("x,kind,label\n" + rows)
    train_main(["--dataset", f"csv:{folder / 'train.csv'}", "--model_fn", str(folder / "m.pth"), "--n_epochs", "20",
                "--hidden_sizes", "8", "--verbose", "0", "--seed", "0"])
    return folder / "m.pth"


def predict(argv, capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        predict_cli.main(argv)
    return exit_info.value.code, capsys.readouterr().err


def cells(path) -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_a_users_csv_that_ends_in_a_prediction_column_is_never_replaced(formula_model, tmp_path, capsys):
    new = tmp_path / "new.csv"
    new.write_text("x,kind\n0.5,=a\n-1,-\n")
    mine = tmp_path / "mine.csv"
    mine.write_text("x,kind,prediction\n1,b,my own labels\n")
    code, err = predict(["--model_fn", str(formula_model), str(new), "--out", str(mine)], capsys)
    assert code == 2 and len(err.splitlines()) == 1
    assert f"--out {mine} exists and is not an unedited earlier --out of mnist-predict (no matching receipt" in err
    assert "choose another --out, or remove" in err
    assert mine.read_text() == "x,kind,prediction\n1,b,my own labels\n"
    # Its own earlier output is replaced; once edited (a spreadsheet's save), it is the user's.
    out = tmp_path / "out.csv"
    predict_cli.main(["--model_fn", str(formula_model), str(new), "--out", str(out)])
    predict_cli.main(["--model_fn", str(formula_model), str(new), "--out", str(out)])
    with open(out, "a") as f:
        f.write("2,b,a note of mine,0.5\n")
    edited = out.read_text()
    code, err = predict(["--model_fn", str(formula_model), str(new), "--out", str(out)], capsys)
    assert code == 2 and "is not an unedited earlier --out" in err and out.read_text() == edited


def test_a_copy_of_a_receipt_does_not_make_another_file_ours(formula_model, tmp_path, capsys):
    new = tmp_path / "new.csv"
    new.write_text("x,kind\n0.5,=a\n")
    predict_cli.main(["--model_fn", str(formula_model), str(new), "--out", str(tmp_path / "out.csv")])
    user = tmp_path / "user.csv"
    user.write_text("x,kind,prediction,probability\n0.5,=a,mine,1\n")
    receipt = tmp_path / ".out.csv.mnist_classifier.json"
    (tmp_path / ".user.csv.mnist_classifier.json").write_bytes(receipt.read_bytes().replace(b"out.csv", b"user.csv"))
    code, _ = predict(["--model_fn", str(formula_model), str(new), "--out", str(user)], capsys)
    assert code == 2 and user.read_text() == "x,kind,prediction,probability\n0.5,=a,mine,1\n"


def test_cells_that_start_like_formulas_are_escaped_and_numbers_stay_numbers(formula_model, tmp_path, capsys):
    new = tmp_path / "new.csv"
    new.write_text('x,kind,=note\n-0.5,=a,"=HYPERLINK(""http://evil"")"\n+1.5,-,@SUM(A1)\n-1e3,=a,\tx\n')
    out = tmp_path / "out.csv"
    predict_cli.main(["--model_fn", str(formula_model), str(new), "--out", str(out), "--json"])
    header, *rows = cells(out)
    assert header == ["x", "kind", "'=note", "prediction", "probability"]
    assert [row[:3] for row in rows] == [["-0.5", "'=a", "'=HYPERLINK(\"http://evil\")"], ["+1.5", "'-", "'@SUM(A1)"],
                                         ["-1e3", "'=a", "'\tx"]]
    assert {row[3] for row in rows} <= {"'=cmd", "'@plain"} and all(0 < float(row[4]) <= 1 for row in rows)
    # Read back as an input, it is the file it was: the same levels, so the same predictions.
    printed = capsys.readouterr().out
    predict_cli.main(["--model_fn", str(formula_model), str(out), "--json"])
    assert capsys.readouterr().out.replace(str(out), str(new)) == printed


@pytest.mark.parametrize("cell", ["=1+1", "+x", "-", "@a", "\tx", "\rx", "'quoted", "''", "-0.5", "plain", ""])
def test_the_escape_is_undone_exactly(cell):
    assert as_written(spreadsheet_safe(cell)) == cell
    assert not spreadsheet_safe(cell).startswith(("=", "+", "@", "\t", "\r")) or cell in ("-0.5",)


def test_image_predictions_escape_class_names(digit_model, tmp_path, capsys):
    payload = torch.load(digit_model, weights_only=True)
    payload["dataset"]["classes"] = ["=HYPERLINK(\"x\")" if c == "4" else c for c in payload["dataset"]["classes"]]
    torch.save(payload, tmp_path / "m.pth")
    render_digit(4, 40, (20, 10)).save(tmp_path / "a.png")
    predict_cli.main(["--model_fn", str(tmp_path / "m.pth"), str(tmp_path / "a.png"), "--out", str(tmp_path / "p.csv")])
    assert cells(tmp_path / "p.csv")[1][1] == "'=HYPERLINK(\"x\")"


def test_an_earlier_out_of_several_files_can_be_predicted_with_another(formula_model, tmp_path, capsys):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("x,kind\n0.5,=a\n")
    b.write_text("x,kind\n-1,-\n")
    predict_cli.main(["--model_fn", str(formula_model), str(a), str(b), "--out", str(tmp_path / "both.csv")])
    predict_cli.main(["--model_fn", str(formula_model), str(tmp_path / "both.csv"), str(a), "--out",
                      str(tmp_path / "again.csv")])
    header, *rows = cells(tmp_path / "again.csv")
    assert header == ["file", "x", "kind", "prediction", "probability"]
    assert [row[:3] for row in rows] == [[str(tmp_path / "both.csv"), "0.5", "'=a"],
                                         [str(tmp_path / "both.csv"), "-1", "'-"], [str(a), "0.5", "'=a"]]
    assert "note" not in capsys.readouterr().err  # an earlier --out's columns give way without a word
    # A user's own column named file gives way too, and says so.
    (tmp_path / "c.csv").write_text("file,x,kind\nscan-1.pdf,0.5,=a\n")
    predict_cli.main(["--model_fn", str(formula_model), str(tmp_path / "c.csv"), str(a), "--out",
                      str(tmp_path / "third.csv")])
    assert "c.csv: its column 'file' is replaced in --out" in capsys.readouterr().err
    assert [row[0] for row in cells(tmp_path / "third.csv")[1:]] == [str(tmp_path / "c.csv"), str(a)]


def test_an_out_whose_receipt_cannot_be_written_is_refused_before_any_work(formula_model, tmp_path, capsys):
    # 240 characters fit a file name (255 at most), but not its receipt's temporary file beside it.
    new = tmp_path / "new.csv"
    new.write_text("x,kind\n0.5,=a\n")
    out = tmp_path / ("p" * 236 + ".csv")
    code, err = predict(["--model_fn", str(formula_model), str(new), "--out", str(out)], capsys)
    assert code == 2 and len(err.splitlines()) == 1 and "receipt" in err and "File name too long" in err
    assert not out.exists() and capsys.readouterr().out == ""


def test_a_receipt_that_fails_after_the_file_was_written_says_so(tmp_path):
    out = tmp_path / ("p" * 236 + ".csv")
    with pytest.raises(SaveFailed) as error:
        write_with_receipt(out, lambda f: f.write(b"x\n"), "test")
    assert out.read_bytes() == b"x\n" and "nothing was written" not in str(error.value)
    assert f"{out}: written, but not its receipt" in str(error.value)


def test_only_our_own_unedited_output_is_read_back_unescaped(formula_model, tmp_path, capsys):
    # A user's CSV whose last column is named prediction keeps its cells as written, quotes and all.
    user = tmp_path / "user.csv"
    user.write_text("x,kind,prediction\n0.5,'b,'=c\n")
    assert read_rows(user).values.tolist() == [["0.5", "'b", "'=c"]]
    new = tmp_path / "new.csv"
    new.write_text("x,kind\n0.5,=a\n")
    out = tmp_path / "out.csv"
    predict_cli.main(["--model_fn", str(formula_model), str(new), "--out", str(out)])
    assert read_rows(out)["kind"].tolist() == ["=a"]
    with open(out, "a") as f:  # edited: the user's file now, read as written
        f.write("1,'=b,x,0.5\n")
    assert read_rows(out)["kind"].tolist() == ["'=a", "'=b"]
