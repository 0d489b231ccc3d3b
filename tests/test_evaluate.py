import contextlib
import io
import json
import re

import numpy as np
import pytest
from PIL import Image

from mnist_classifier.cli.evaluate import main
from mnist_classifier.cli.train import main as train_main


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A model file, and the test accuracy its training printed."""
    from .conftest import write_fake_mnist

    root = tmp_path_factory.mktemp("evaluate")
    data_dir = write_fake_mnist(root / "data")
    model_fn = root / "model.pth"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        train_main(["--model_fn", str(model_fn), "--data_dir", str(data_dir), "--n_epochs", "2", "--batch_size", "64",
                    "--seed", "0", "--verbose", "0"])
    accuracy = float(re.search(r"Test accuracy: ([\d.]+)%", printed.getvalue()).group(1)) / 100
    return model_fn, accuracy


def test_writes_the_four_files_and_prints_the_report(trained, tmp_path, capsys):
    model_fn, accuracy_at_training = trained
    capsys.readouterr()
    main(["--model_fn", str(model_fn), "--out_dir", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert "precision" in out and "recall" in out and f"Test accuracy: {accuracy_at_training:.2%}" in out
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["confusion_matrix.png", "learning_curves.png", "metrics.json", "worst_mistakes.png"]
    for name in names[:2] + names[3:]:
        width, height = Image.open(tmp_path / "out" / name).size
        assert width >= 400 and height >= 300
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    confusion = np.array(metrics["confusion_matrix"])
    assert metrics["n_test"] == confusion.sum() == 200
    # The same model on the same test images: the accuracy training printed, and the matrix's diagonal.
    assert metrics["accuracy"] == pytest.approx(accuracy_at_training, abs=0.00005)
    assert metrics["accuracy"] == confusion.trace() / 200
    assert 0.3 < metrics["accuracy"] < 1  # two epochs on the learnable fake digits: far above chance
    assert set(metrics["per_class"]["3"]) >= {"precision", "recall", "f1-score", "support"}
    assert metrics["per_class"]["3"]["support"] == confusion[3].sum()


def test_json_flag_prints_the_numbers(trained, tmp_path, capsys):
    capsys.readouterr()
    main(["--model_fn", str(trained[0]), "--out_dir", str(tmp_path / "o"), "--json"])
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["dataset"] == "mnist" and len(metrics["per_class"]) == 10
    assert set(metrics["files"]) == {"confusion_matrix", "worst_mistakes", "learning_curves", "metrics"}


def test_missing_model_file_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--model_fn", str(tmp_path / "none.pth"), "--out_dir", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "none.pth: no such model file" in err
    assert not (tmp_path / "o").exists()  # nothing written on failure


def test_a_model_whose_csv_changed_is_refused(tmp_path, capsys):
    data = tmp_path / "data.csv"
    data.write_text("a,b,k\n" + "".join(f"{i % 7},{i % 3},{i % 3}\n" for i in range(60)))
    train_main(["--model_fn", str(tmp_path / "m.pth"), "--dataset", f"csv:{data}", "--n_epochs", "1",
                "--batch_size", "8", "--verbose", "0"])
    data.write_text("a,b,k\n" + "".join(f"{i % 7},{i % 3},{i % 5}\n" for i in range(60)))  # five classes now
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(["--model_fn", str(tmp_path / "m.pth"), "--out_dir", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "the data changed since the model was trained" in err
    assert "its classes were ['0', '1', '2'], now ['0', '1', '2', '3', '4']" in err


def test_outputs_replace_links_instead_of_writing_through_them(trained, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "victim.csv").write_text("precious")
    (tmp_path / "out" / "metrics.json").symlink_to(tmp_path / "victim.csv")
    main(["--model_fn", str(trained[0]), "--out_dir", str(tmp_path / "out")])
    assert (tmp_path / "victim.csv").read_text() == "precious"
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["n_test"] == 200
