"""Nothing lost: resume, interrupt, crash during a save, divergence, determinism."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from mnist_classifier.cli import train as train_module
from mnist_classifier.inference.model_file import load_model
from mnist_classifier.training import build as build_module
from mnist_classifier.training.checkpoint import load_checkpoint
from mnist_classifier.training.trainer import Trainer, TrainingDiverged

from .conftest import signal_after_epoch
from .test_trainer import config

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ["--dataset", "digits", "--batch_size", "64", "--seed", "3", "--verbose", "0", "--lr_schedule", "onecycle"]


def weights(path: Path) -> dict:
    return torch.load(path, weights_only=True)["model"]


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_resumed_run_ends_bit_identical_to_an_uninterrupted_one(tmp_path, monkeypatch, capsys):
    train_module.main(["--model_fn", str(tmp_path / "whole.pth"), "--n_epochs", "5", *DIGITS])

    # The same run, stopped by a real SIGINT after epoch 2, then resumed from its checkpoint.
    signal_after_epoch(monkeypatch, 2, signal.SIGINT)
    with pytest.raises(SystemExit) as exit_info:
        train_module.main(["--model_fn", str(tmp_path / "split.pth"), "--n_epochs", "5", *DIGITS])
    assert exit_info.value.code == 130
    err = capsys.readouterr().err
    assert "SIGINT during epoch 3" in err and "--resume" in err
    saved = load_checkpoint(tmp_path / "split.pth.ckpt")
    assert len(saved["trainer"]["history"]) == 2  # the last completed epoch
    assert len(torch.load(tmp_path / "split.pth", weights_only=True)["history"]) == 2  # best-so-far model

    monkeypatch.undo()
    train_module.main(["--resume", str(tmp_path / "split.pth.ckpt")])
    assert "Test accuracy" in capsys.readouterr().out
    assert_same_weights(weights(tmp_path / "whole.pth"), weights(tmp_path / "split.pth"))


def test_checkpoint_every_writes_a_loadable_checkpoint(tmp_path):
    train_module.main(["--model_fn", str(tmp_path / "m.pth"), "--n_epochs", "3", "--checkpoint_every", "2", *DIGITS])
    saved = load_checkpoint(tmp_path / "m.pth.ckpt")
    assert len(saved["trainer"]["history"]) == 2 and saved["config"]["n_epochs"] == 3


def test_same_seed_same_weights(tmp_path):
    for name in ("a.pth", "b.pth"):
        train_module.main(["--model_fn", str(tmp_path / name), "--n_epochs", "2", *DIGITS])
    assert_same_weights(weights(tmp_path / "a.pth"), weights(tmp_path / "b.pth"))


def test_a_nan_loss_stops_with_epoch_and_batch_and_keeps_good_weights():
    calls = {"n": 0}

    def loss_that_breaks(y_hat, y):
        calls["n"] += torch.is_grad_enabled()  # count training batches, not validation
        loss = nn.functional.mse_loss(y_hat, y)
        return loss * float("nan") if calls["n"] == 2 * 4 + 3 and torch.is_grad_enabled() else loss

    torch.manual_seed(0)
    x = torch.randn(64, 2)
    model = nn.Linear(2, 1)
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.01), loss_that_breaks)
    with pytest.raises(TrainingDiverged, match="epoch 3, batch 3"):  # 4 batches an epoch
        trainer.train((x, x.sum(1, keepdim=True)), (x, x.sum(1, keepdim=True)), config(n_epochs=5, batch_size=16))
    assert trainer.best_epoch == 2 and len(trainer.snapshot["history"]) == 2
    assert all(torch.isfinite(t).all() for t in trainer.best_state.values())


def test_divergence_from_the_command_line_exits_1_and_keeps_the_last_good_model(tmp_path, monkeypatch, capsys):
    make_loss = build_module.make_loss

    def loss_that_turns_nan_in_epoch_2(config, task):
        crit, steps = make_loss(config, task), {"n": 0}

        def loss(y_hat, y):
            steps["n"] += torch.is_grad_enabled()
            return crit(y_hat, y) * (float("inf") if steps["n"] == 18 + 5 else 1.0)  # 18 batches an epoch

        return loss

    monkeypatch.setattr(build_module, "make_loss", loss_that_turns_nan_in_epoch_2)
    with pytest.raises(SystemExit) as exit_info:
        train_module.main(["--model_fn", str(tmp_path / "m.pth"), "--n_epochs", "3", *DIGITS])
    assert exit_info.value.code == 1
    assert "NaN or infinite in epoch 2, batch 5" in capsys.readouterr().err
    model, saved = load_model(tmp_path / "m.pth")
    assert saved["best_epoch"] == 1 and all(torch.isfinite(p).all() for p in model.parameters())


def start_training(tmp_path, fake_mnist, *flags):
    command = [sys.executable, str(ROOT / "train.py"), "--model_fn", str(tmp_path / "m.pth"), "--data_dir",
               str(fake_mnist), "--n_epochs", "200", "--batch_size", "16", "--seed", "0", *flags]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_epoch(process) -> None:
    for line in process.stdout:
        if line.startswith("Epoch(2/"):
            return
    raise AssertionError("training ended before its second epoch")


def test_sigterm_saves_model_and_checkpoint_then_resume_finishes(tmp_path, fake_mnist):
    process = start_training(tmp_path, fake_mnist)
    wait_for_epoch(process)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143, err
    assert "SIGTERM" in err and f"--resume {tmp_path / 'm.pth.ckpt'}" in err
    model, saved = load_model(tmp_path / "m.pth")
    assert len(saved["history"]) >= 2 and saved["stopped"].startswith("SIGTERM")
    resumed = subprocess.run([sys.executable, str(ROOT / "train.py"), "--resume", str(tmp_path / "m.pth.ckpt"),
                              "--verbose", "0"], capture_output=True, text=True, timeout=600,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
    # The checkpoint's configuration (200 epochs) is resumed as it was; it completes.
    assert resumed.returncode == 0, resumed.stderr
    assert "Test accuracy" in resumed.stdout


def test_second_ctrl_c_exits_at_once_and_corrupts_nothing(tmp_path, fake_mnist):
    process = start_training(tmp_path, fake_mnist)
    wait_for_epoch(process)
    process.send_signal(signal.SIGINT)
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=60)
    assert process.returncode == 130
    for name in ("m.pth", "m.pth.ckpt"):
        if (tmp_path / name).exists():  # written before the second signal, or not at all
            torch.load(tmp_path / name, weights_only=True)


CHILD = """
import sys, torch
sys.path.insert(0, {root!r})
from mnist_classifier.models.mlp import ImageClassifier
from mnist_classifier.inference.model_file import save_model_file
model = ImageClassifier(784, 10, [2048, 1024])
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
print("ready", flush=True)
i = 0
while True:
    i += 1
    save_model_file({path!r}, model, optimizer, {{"i": i}})
"""


def test_sigkill_during_saves_never_leaves_a_broken_model_file(tmp_path):
    path = tmp_path / "m.pth"
    for kill in range(10):
        child = subprocess.Popen([sys.executable, "-c", CHILD.format(root=str(ROOT), path=str(path))],
                                 stdout=subprocess.PIPE, text=True)
        assert child.stdout.readline().strip() == "ready"
        time.sleep(0.3 + 0.07 * kill)  # land at different moments of a save
        child.kill()
        child.wait()
        if path.exists():
            saved = torch.load(path, weights_only=True)  # always the previous or the new file, whole
            assert saved["config"]["i"] >= 1
    assert path.exists()
    # Kills that landed mid-save leave their temporary file behind: proof the saves were hit.
    assert list(tmp_path.glob(".m.pth.*.tmp"))


@pytest.fixture(scope="module")
def one_epoch_checkpoint(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("checkpoint")
    train_module.main(["--model_fn", str(folder / "m.pth"), "--n_epochs", "1", "--checkpoint_every", "1", *DIGITS])
    return folder / "m.pth.ckpt"


@pytest.mark.parametrize("edit, message", [
    ({"batch_size": -5}, "--batch_size must be a positive integer"),
    ({"lr": float("nan")}, "--lr must be a finite number"),
    ({"lr_schedule": "bogus"}, "--lr_schedule must be one of"),
    ({"model": "transformer"}, "--model must be one of"),
])
def test_an_edited_checkpoint_configuration_is_validated_like_flags(one_epoch_checkpoint, tmp_path, capsys, edit,
                                                                    message):
    checkpoint = torch.load(one_epoch_checkpoint, weights_only=True)
    checkpoint["config"].update(edit)
    torch.save(checkpoint, tmp_path / "m.pth.ckpt")
    with pytest.raises(SystemExit) as exit_info:
        train_module.main(["--resume", str(tmp_path / "m.pth.ckpt")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "the checkpoint's configuration is refused" in err and message in err and len(err.splitlines()) == 1
