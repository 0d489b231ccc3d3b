"""Runs leave their metrics beside the model file: a history CSV and the configuration as JSON."""

from __future__ import annotations

import csv
import json
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from mnist_classifier.cli.train import main
from mnist_classifier.files import companion_paths, lock_path
from mnist_classifier.training.run_log import HISTORY_COLUMNS

from .conftest import beside

DIGITS = ["--dataset", "digits", "--gpu_id", "-1", "--amp", "off", "--seed", "0", "--batch_size", "64",
          "--verbose", "0"]


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_the_history_csv_and_config_json_hold_what_the_model_file_holds(tmp_path):
    main(["--model_fn", str(tmp_path / "m.pth"), "--n_epochs", "3", *DIGITS])
    saved = torch.load(tmp_path / "m.pth", weights_only=True)
    rows = read_rows(beside(tmp_path / "m.pth", "history"))
    assert list(rows[0]) == list(HISTORY_COLUMNS) and len(rows) == 3
    for row, record in zip(rows, saved["history"], strict=True):
        assert int(row["epoch"]) == record["epoch"]
        for name in ("train_loss", "valid_loss", "valid_accuracy", "lr", "seconds"):
            assert float(row[name]) == record[name], name  # written exactly, not rounded
    # The cosine schedule decays to 0 over the run: the rate each epoch ended with falls.
    assert float(rows[0]["lr"]) > float(rows[1]["lr"]) > float(rows[2]["lr"]) == pytest.approx(0, abs=1e-9)
    config = json.loads((beside(tmp_path / "m.pth", "config")).read_text())
    assert config.pop("format") == "mnist_classifier.run_config/1"
    assert config == saved["config"]  # seed and precision included, as the run settled them


def test_a_regression_history_leaves_accuracy_empty(tmp_path):
    main(["--model_fn", str(tmp_path / "m.pth"), "--n_epochs", "2", "--dataset", "diabetes", "--gpu_id", "-1",
          "--amp", "off", "--seed", "0", "--batch_size", "32", "--verbose", "0"])
    rows = read_rows(beside(tmp_path / "m.pth", "history"))
    assert [row["valid_accuracy"] for row in rows] == ["", ""] and all(float(row["valid_loss"]) > 0 for row in rows)


def test_a_resumed_run_rewrites_the_whole_history(tmp_path):
    main(["--model_fn", str(tmp_path / "m.pth"), "--n_epochs", "2", "--lr_schedule", "constant",
          "--checkpoint_every", "2", *DIGITS])
    main(["--resume", str(beside(tmp_path / "m.pth", "checkpoint")), "--n_epochs", "4"])
    rows = read_rows(beside(tmp_path / "m.pth", "history"))
    assert [int(row["epoch"]) for row in rows] == [1, 2, 3, 4]


@pytest.mark.parametrize("which", ["history", "config"])
def test_a_file_of_yours_where_the_history_would_go_is_never_replaced(tmp_path, capsys, which):
    theirs = companion_paths(tmp_path / "m.pth")[which]
    theirs.write_text("my own notes\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["--model_fn", str(tmp_path / "m.pth"), "--n_epochs", "1", *DIGITS])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and f"{theirs} exists and is not a" in err and "never replaced" in err
    assert theirs.read_text() == "my own notes\n" and not (tmp_path / "m.pth").exists()


def test_companion_names():
    assert companion_paths("runs/m.pth") == {"history": Path("runs/m.pth.history.csv"),
                                             "config": Path("runs/m.pth.config.json"),
                                             "checkpoint": Path("runs/m.pth.ckpt")}
    assert lock_path("runs/m.pth") == Path("runs/.m.pth.lock")
    # Names that differ only after their last dot keep files of their own.
    assert companion_paths("runs/lr0.001")["history"] != companion_paths("runs/lr0.003")["history"]
    assert companion_paths("m.pth")["config"] != companion_paths("m.pt")["config"]


def test_a_history_that_cannot_be_written_is_one_warning_and_training_goes_on(tmp_path, capsys, monkeypatch):
    from mnist_classifier.errors import SaveFailed
    from mnist_classifier.training import run_log

    def full_disk(path, history):
        raise SaveFailed(f"{path}: could not be saved (No space left on device)")

    monkeypatch.setattr(run_log, "write_history", full_disk)
    main(["--model_fn", str(tmp_path / "m.pth"), "--n_epochs", "3", *DIGITS])
    err = capsys.readouterr().err
    assert err.count("warning:") == 1 and "(No space left on device); training goes on" in err
    assert len(torch.load(tmp_path / "m.pth", weights_only=True)["history"]) == 3


def test_a_run_that_completes_no_epoch_leaves_the_earlier_files_as_they_were(tmp_path, monkeypatch):
    from mnist_classifier.training import build

    main(["--model_fn", str(tmp_path / "m.pth"), "--n_epochs", "1", *DIGITS])
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    monkeypatch.setattr(build, "make_loss", lambda *a, **k: lambda y_hat, y: y_hat.sum() * float("nan"))
    with pytest.raises(SystemExit):  # diverges in its first epoch
        main(["--model_fn", str(tmp_path / "m.pth"), "--n_epochs", "1", *DIGITS])
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_tensorboard_event_files_hold_every_epoch(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from mnist_classifier import Regressor

    main(["--model_fn", str(tmp_path / "m.pth"), "--dataset", "digits", "--n_epochs", "3", "--verbose", "0",
                "--seed", "0", "--hidden_sizes", "16", "--batch_size", "64", "--tensorboard", str(tmp_path / "tb")])
    events = EventAccumulator(str(tmp_path / "tb")).Reload()
    assert set(events.Tags()["scalars"]) == {"train_loss", "valid_loss", "valid_accuracy", "lr"}
    history = torch.load(tmp_path / "m.pth", weights_only=True)["history"]
    logged = [event.value for event in events.Scalars("valid_loss")]
    assert logged == pytest.approx([h["valid_loss"] for h in history]) and len(logged) == 3
    assert '"seed": 0' in events.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    # fit() writes them too.
    X, y = np.random.default_rng(0).normal(size=(60, 3)), np.arange(60.0)
    for _ in range(2):  # a folder per fit: a grid search's fits stay apart
        Regressor(n_epochs=2, random_state=0, tensorboard=str(tmp_path / "fit")).fit(X, y)
    runs = sorted((tmp_path / "fit").iterdir())
    assert len(runs) == 2 and len(EventAccumulator(str(runs[0])).Reload().Scalars("train_loss")) == 2


def test_tensorboard_into_a_file_is_one_line(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(SystemExit):
        main(["--model_fn", str(tmp_path / "m.pth"), "--dataset", "digits", "--n_epochs", "1",
                    "--tensorboard", str(tmp_path / "file")])


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_tensorboard_into_a_folder_that_takes_no_file_is_one_line_before_training(tmp_path, capfd, monkeypatch):
    monkeypatch.setattr(threading, "excepthook", threading.__excepthook__)  # as outside pytest: printed
    with pytest.raises(SystemExit) as exit_info:
        main(["--model_fn", str(tmp_path / "m.pth"), "--n_epochs", "1", "--tensorboard", "/proc/self", *DIGITS])
    err = capfd.readouterr().err
    assert exit_info.value.code == 2 and err.splitlines() == [
        "mnist-train: error: --tensorboard /proc/self: cannot write there (No such file or directory)"], err
    assert not (tmp_path / "m.pth").exists()
