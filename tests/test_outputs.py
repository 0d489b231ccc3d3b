"""Nothing on disk lost: what mnist-train refuses to write over, and who may write a file at once."""

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mnist_classifier.cli.train import main
from mnist_classifier.errors import UserError
from mnist_classifier.training.outputs import writing

from .conftest import beside

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--n_epochs", "1", "--batch_size", "8", "--verbose", "0", "--seed", "0"]


def table_csv(path: Path) -> Path:
    path.write_text("a,b,kind\n" + "".join(f"{i % 7},{i % 3},{'xy'[i % 2]}\n" for i in range(40)))
    return path


def refused(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and len(err.splitlines()) == 1, err
    return err


def test_the_training_csv_is_never_the_model_file(tmp_path, capsys):
    data = table_csv(tmp_path / "data.csv")
    before = data.read_bytes()
    err = refused(["--model_fn", str(data), "--dataset", f"csv:{data}", *FAST], capsys)
    assert f"--model_fn {data} is this run's input (--dataset)" in err
    assert data.read_bytes() == before


def test_the_test_csv_is_never_an_output(tmp_path, capsys):
    data, test = table_csv(tmp_path / "data.csv"), table_csv(tmp_path / "test.csv")
    err = refused(["--model_fn", str(tmp_path / "m.pth"), "--checkpoint_fn", str(test), "--dataset", f"csv:{data}",
                   "--test_csv", str(test), *FAST], capsys)
    assert f"--checkpoint_fn {test} is this run's input (--test_csv)" in err


def test_model_and_checkpoint_must_differ(tmp_path, capsys):
    err = refused(["--model_fn", str(tmp_path / "m.pth"), "--checkpoint_fn", str(tmp_path / "m.pth"),
                   "--dataset", "digits", *FAST], capsys)
    assert f"--checkpoint_fn {tmp_path / 'm.pth'} is also the --model_fn" in err


def test_a_file_that_is_not_ours_is_never_replaced(tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("a week of notes")
    err = refused(["--model_fn", str(notes), "--dataset", "digits", *FAST], capsys)
    assert "exists and is not a model file of mnist_classifier" in err and f"rm {notes}" in err
    assert notes.read_text() == "a week of notes"


def test_each_output_replaces_only_a_file_of_its_own_role(tmp_path, capsys, digit_model):
    (tmp_path / "model.pth").write_bytes(digit_model.read_bytes())
    err = refused(["--model_fn", str(tmp_path / "new.pth"), "--checkpoint_fn", str(tmp_path / "model.pth"),
                   "--dataset", "digits", *FAST], capsys)
    assert f"--checkpoint_fn {tmp_path / 'model.pth'} exists and is not a checkpoint of mnist_classifier" in err
    assert (tmp_path / "model.pth").read_bytes() == digit_model.read_bytes()


def link_to_a_victim(folder: Path) -> None:
    (folder / "victim.txt").write_text("keep")
    (folder / ".m.pth.lock").symlink_to(folder / "victim.txt")


@pytest.mark.parametrize("make, message", [
    (link_to_a_victim, "cannot be opened (Too many levels of symbolic links)"),
    (lambda d: os.mkfifo(d / ".m.pth.lock"), "is not a regular file; remove it"),
    (lambda d: (d / ".m.pth.lock").mkdir(), "cannot be opened (Is a directory)"),
])
def test_a_lock_path_that_is_not_a_plain_file_is_refused_untouched(tmp_path, capsys, make, message):
    make(tmp_path)
    err = refused(["--model_fn", str(tmp_path / "m.pth"), "--dataset", "digits", *FAST], capsys)
    assert f"--model_fn: its lock file {tmp_path / '.m.pth.lock'} {message}" in err
    assert not (tmp_path / "m.pth").exists()
    if (tmp_path / "victim.txt").exists():
        assert (tmp_path / "victim.txt").read_text() == "keep"


@pytest.mark.parametrize("flags, message", [
    (["--model_fn", "newdir/"], "--model_fn newdir/ names a folder; give a file path"),
    (["--model_fn", "x" * 250 + ".pth"], "File name too long"),
    (["--model_fn", "m.pth", "--dataset", "csv:t.csv", "--test_csv", "t.csv"], "is the training file itself"),
    (["--model_fn", "m.pth", "--seed", str(10**20)], "--seed must lie in [0, 9223372036854775807]"),
])
def test_odd_paths_and_values_are_refused_before_training(tmp_path, monkeypatch, capsys, flags, message):
    monkeypatch.chdir(tmp_path)
    table_csv(tmp_path / "t.csv")
    argv = [*FAST, *flags] if "--dataset" in flags else ["--dataset", "digits", *FAST, *flags]  # flags win
    assert message in refused(argv, capsys)


def test_a_symlink_is_refused_and_its_target_kept(tmp_path, capsys, digit_model):
    target = tmp_path / "real.pth"
    target.write_bytes(digit_model.read_bytes())
    (tmp_path / "link.pth").symlink_to(target)
    err = refused(["--model_fn", str(tmp_path / "link.pth"), "--dataset", "digits", *FAST], capsys)
    assert "is a symbolic link" in err
    assert (tmp_path / "link.pth").is_symlink() and target.read_bytes() == digit_model.read_bytes()


def test_a_fifo_and_a_device_are_refused(tmp_path, capsys):
    os.mkfifo(tmp_path / "pipe")
    assert "not a regular file (a FIFO or device)" in refused(
        ["--model_fn", str(tmp_path / "pipe"), "--dataset", "digits", *FAST], capsys)
    assert "not a regular file (a FIFO or device)" in refused(
        ["--model_fn", "/dev/null", "--dataset", "digits", *FAST], capsys)
    assert Path("/dev/null").is_char_device()


def test_an_earlier_model_file_of_ours_is_replaced(tmp_path, capsys, digit_model):
    (tmp_path / "m.pth").write_bytes(digit_model.read_bytes())
    main(["--model_fn", str(tmp_path / "m.pth"), "--dataset", "digits", *FAST])
    assert torch.load(tmp_path / "m.pth", weights_only=True)["dataset"]["name"] == "digits"
    # The lock file is gone too.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pth", "m.pth.config.json", "m.pth.history.csv"]


def test_a_second_training_into_the_same_file_is_refused_while_the_first_runs(tmp_path, fake_mnist, capsys):
    first = subprocess.Popen([sys.executable, str(ROOT / "train.py"), "--model_fn", str(tmp_path / "m.pth"),
                              "--data_dir", str(fake_mnist), "--n_epochs", "200", "--batch_size", "16"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        for line in first.stdout:
            if line.startswith("Epoch(1/"):
                break
        err = refused(["--model_fn", str(tmp_path / "m.pth"), "--dataset", "digits", *FAST], capsys)
        assert f"--model_fn {tmp_path / 'm.pth'} is being written by another training (pid {first.pid} on" in err
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=60)
    assert first.returncode == 143
    main(["--model_fn", str(tmp_path / "m.pth"), "--dataset", "digits", *FAST])  # free again once it ended


def test_the_lock_is_released_when_the_run_fails(tmp_path):
    paths = {"--model_fn": tmp_path / "m.pth"}
    with pytest.raises(RuntimeError), writing(paths):
        raise RuntimeError("training failed")
    with writing(paths):
        with pytest.raises(UserError, match=f"pid {os.getpid()}"), writing(paths):
            pass
    assert not list(tmp_path.iterdir())


@pytest.fixture
def checkpoint(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    main(["--model_fn", str(folder / "m.pth"), "--dataset", "digits", "--checkpoint_every", "1",
          "--lr_schedule", "constant", *FAST])
    return beside(folder / "m.pth", "checkpoint")


def test_resume_never_writes_where_an_edited_checkpoint_points(checkpoint, tmp_path, capsys):
    victim = tmp_path / "victim.pth"
    victim.write_bytes(checkpoint.with_name("m.pth").read_bytes())  # even a model file of ours
    saved = torch.load(checkpoint, weights_only=True)
    saved["config"]["model_fn"] = str(victim)
    saved["config"]["checkpoint_fn"] = str(tmp_path / "victim.ckpt")
    torch.save(saved, checkpoint)
    before = victim.read_bytes()
    main(["--resume", str(checkpoint), "--n_epochs", "2", "--verbose", "0"])
    assert victim.read_bytes() == before and not (tmp_path / "victim.ckpt").exists()
    # The outputs sit beside the checkpoint: the model under its saved file name, the checkpoint in place.
    assert len(torch.load(checkpoint.with_name("victim.pth"), weights_only=True)["history"]) == 2
    assert len(torch.load(checkpoint, weights_only=True)["trainer"]["history"]) == 2


def test_resume_refuses_a_checkpoint_given_as_the_model_file(checkpoint, capsys):
    err = refused(["--resume", str(checkpoint), "--model_fn", str(checkpoint)], capsys)
    assert f"--model_fn {checkpoint} is this run's input (--resume)" in err


def test_resume_on_changed_csv_values_says_what_changed(tmp_path, capsys):
    data = table_csv(tmp_path / "data.csv")
    main(["--model_fn", str(tmp_path / "m.pth"), "--dataset", f"csv:{data}", "--checkpoint_every", "1",
          "--lr_schedule", "constant", *FAST])
    data.write_text(data.read_text().replace("\n6,", "\n5,"))  # same shape, other values
    err = refused(["--resume", str(beside(tmp_path / "m.pth", "checkpoint")), "--n_epochs", "2"], capsys)
    assert "the training data changed since the checkpoint (the same number of rows, but their values changed)" in err
    data.write_text(data.read_text() + "1,1,x\n" * 10)
    err = refused(["--resume", str(beside(tmp_path / "m.pth", "checkpoint")), "--n_epochs", "2"], capsys)
    assert "it had 32 training rows of shape [2], now 40 of shape [2]" in err
    table_csv(data)
    data.write_text(data.read_text().replace(",y\n", ",z\n"))
    err = refused(["--resume", str(beside(tmp_path / "m.pth", "checkpoint")), "--n_epochs", "2"], capsys)
    assert "its classes were ['x', 'y'], now ['x', 'z']" in err


@pytest.mark.parametrize("folder, message", [
    ("m.pth", "--tensorboard {d}/m.pth is also the --model_fn"),
    ("m.pth.ckpt", "--tensorboard {d}/m.pth.ckpt is also the --checkpoint_fn"),
    ("m.pth/runs", "--tensorboard {d}/m.pth/runs would be a folder inside {d}/m.pth, the --model_fn"),
    ("data.csv", "--tensorboard {d}/data.csv: not a folder"),
])
def test_an_output_folder_where_a_file_is_read_or_written_is_refused(tmp_path, folder, message):
    from mnist_classifier.training.outputs import check_outputs

    table_csv(tmp_path / "data.csv")
    outputs = {"--model_fn": tmp_path / "m.pth", "--checkpoint_fn": beside(tmp_path / "m.pth", "checkpoint")}
    with pytest.raises(UserError, match=re.escape(message.format(d=tmp_path))):
        check_outputs(outputs, {"--dataset": tmp_path / "data.csv"}, folders={"--tensorboard": tmp_path / folder})
    check_outputs(outputs, {}, folders={"--tensorboard": tmp_path / "runs", "--other": None})  # beside them: fine


@pytest.mark.parametrize("where", ["m.pth", "m.pth.ckpt"])
def test_tensorboard_at_the_model_or_checkpoint_path_is_refused_before_training(tmp_path, capsys, where):
    err = refused(["--model_fn", str(tmp_path / "m.pth"), "--dataset", "digits", "--tensorboard",
                   str(tmp_path / where), *FAST], capsys)
    assert f"--tensorboard {tmp_path / where} is also the" in err
    assert list(tmp_path.iterdir()) == []  # nothing made, nothing trained
