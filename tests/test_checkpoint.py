"""Nothing lost: resume, interrupt, crash during a save, divergence, determinism."""

import contextlib
import os
import resource
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

from .conftest import beside, signal_after_epoch
from .test_trainer import config

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ["--dataset", "digits", "--batch_size", "64", "--seed", "3", "--verbose", "0", "--lr_schedule", "onecycle"]


def weights(path: Path) -> dict:
    return torch.load(path, weights_only=True)["model"]


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


@pytest.mark.parametrize("augment", [[], ["--augment"]], ids=["plain", "augment"])
def test_resumed_run_ends_bit_identical_to_an_uninterrupted_one(augment, tmp_path, monkeypatch, capsys):
    train_module.main(["--model_fn", str(tmp_path / "whole.pth"), "--n_epochs", "5", *DIGITS, *augment])

    # The same run, stopped by a real SIGINT after epoch 2, then resumed from its checkpoint.
    signal_after_epoch(monkeypatch, 2, signal.SIGINT)
    with pytest.raises(SystemExit) as exit_info:
        train_module.main(["--model_fn", str(tmp_path / "split.pth"), "--n_epochs", "5", *DIGITS, *augment])
    assert exit_info.value.code == 130
    err = capsys.readouterr().err
    assert "SIGINT during epoch 3" in err and "--resume" in err
    saved = load_checkpoint(beside(tmp_path / "split.pth", "checkpoint"))
    assert len(saved["trainer"]["history"]) == 2  # the last completed epoch
    assert len(torch.load(tmp_path / "split.pth", weights_only=True)["history"]) == 2  # best-so-far model

    monkeypatch.undo()
    train_module.main(["--resume", str(beside(tmp_path / "split.pth", "checkpoint"))])
    assert "Test accuracy" in capsys.readouterr().out
    assert_same_weights(weights(tmp_path / "whole.pth"), weights(tmp_path / "split.pth"))


def test_checkpoint_every_writes_a_loadable_checkpoint(tmp_path):
    train_module.main(["--model_fn", str(tmp_path / "m.pth"), "--n_epochs", "3", "--checkpoint_every", "2", *DIGITS])
    saved = load_checkpoint(beside(tmp_path / "m.pth", "checkpoint"))
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

    def loss_that_turns_nan_in_epoch_2(config, task, *weights):
        crit, steps = make_loss(config, task, *weights), {"n": 0}

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


def start_training(tmp_path, fake_mnist, *flags, script=None):
    """``train.py`` in a fresh process (or ``script``, which runs ``mnist-train`` its own way)."""
    program = ["-c", script] if script else [str(ROOT / "train.py")]
    command = [sys.executable, *program, "--model_fn", str(tmp_path / "m.pth"), "--data_dir", str(fake_mnist),
               "--n_epochs", "200", "--batch_size", "16", "--seed", "0", *flags]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})


def wait_for_line(stream, start: str) -> None:
    for line in stream:
        if line.startswith(start):
            return
    raise AssertionError(f"the run ended before printing {start!r}")


def test_sigterm_saves_model_and_checkpoint_then_resume_finishes(tmp_path, fake_mnist):
    # A real SIGTERM from outside, landing mid-epoch in a run planned for 200 epochs.
    process = start_training(tmp_path, fake_mnist, "--lr_schedule", "constant")
    wait_for_line(process.stdout, "Epoch(2/")
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143, err
    assert "SIGTERM" in err and f"--resume {tmp_path / 'm.pth.ckpt'}" in err
    model, saved = load_model(tmp_path / "m.pth")
    stopped_after = len(saved["history"])
    assert stopped_after >= 2 and saved["stopped"].startswith("SIGTERM")
    # Resumed in another process; the constant schedule lets it end sooner than planned.
    checkpoint = beside(tmp_path / "m.pth", "checkpoint")
    resumed = subprocess.run([sys.executable, str(ROOT / "train.py"), "--resume", str(checkpoint),
                              "--n_epochs", str(stopped_after + 1), "--verbose", "0"], capture_output=True,
                             text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert resumed.returncode == 0, resumed.stderr
    assert "Test accuracy" in resumed.stdout
    assert len(load_model(tmp_path / "m.pth")[1]["history"]) == stopped_after + 1


# mnist-train whose disk stalls in the middle of every write, and which says when an epoch ended.
STALLING_DISK = """
import sys, time, torch
from mnist_classifier.cli import train, train_run
from mnist_classifier.training.callbacks import Callback

class SayEpoch(Callback):
    def on_epoch_end(self, trainer, record):
        print("epoch", record["epoch"], "ended", file=sys.stderr, flush=True)

def stalled_save(obj, f):
    f.write(b"half a file")
    print("saving", file=sys.stderr, flush=True)
    time.sleep(60)

make_callbacks = train_run.make_callbacks
train_run.make_callbacks = lambda *args: [SayEpoch(), *make_callbacks(*args)]
torch.save = stalled_save
train.main(sys.argv[1:])
"""


def test_second_ctrl_c_exits_at_once_and_corrupts_nothing(tmp_path, fake_mnist, digit_model):
    (tmp_path / "m.pth").write_bytes(digit_model.read_bytes())  # an earlier run's model, to be kept whole
    process = start_training(tmp_path, fake_mnist, "--verbose", "0", script=STALLING_DISK)
    wait_for_line(process.stderr, "epoch 1 ended")
    process.send_signal(signal.SIGINT)
    wait_for_line(process.stderr, "saving")  # the first Ctrl-C stopped training; the save hangs
    started = time.monotonic()
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert time.monotonic() - started < 10  # at once, not after the 60 s the save would take
    assert process.returncode == 130
    assert "SIGINT: exiting at once" in err and "Traceback" not in err
    assert (tmp_path / "m.pth").read_bytes() == digit_model.read_bytes()
    # The half-written file was removed.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "m.pth", "m.pth.config.json", "m.pth.history.csv"]


def save_forever(path: Path) -> None:
    """In a forked child: save a 12 MB model file over and over until killed."""
    from mnist_classifier.inference.model_file import save_model_file
    from mnist_classifier.models.mlp import ImageClassifier

    model = ImageClassifier(784, 10, [2048, 1024])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for i in range(1, 10**6):
        save_model_file(path, model, optimizer, {"i": i})


def test_sigkill_during_saves_never_leaves_a_broken_model_file(tmp_path):
    # Children are forked from this process, so torch is imported once, not once per kill.
    path = tmp_path / "m.pth"
    for kill in range(10):
        pid = os.fork()
        if pid == 0:
            try:
                save_forever(path)
            finally:
                os._exit(0)
        time.sleep(0.15 + 0.05 * kill)  # land at different moments of a save
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
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
    return beside(folder / "m.pth", "checkpoint")


@pytest.mark.parametrize("edit, message", [
    ({"batch_size": -5}, "--batch_size must be a positive integer"),
    ({"lr": float("nan")}, "--lr must be a finite number"),
    ({"lr_schedule": "bogus"}, "--lr_schedule must be one of"),
    ({"train_ratio": 2}, "--train_ratio must be between 0 and 1"),
    ({"n_epochs": -1}, "--n_epochs must be a positive integer"),
    ({"model": "transformer"}, "--model must be one of"),
])
def test_an_edited_checkpoint_configuration_is_validated_like_flags(one_epoch_checkpoint, tmp_path, capsys, edit,
                                                                    message):
    checkpoint = torch.load(one_epoch_checkpoint, weights_only=True)
    checkpoint["config"].update(edit)
    torch.save(checkpoint, beside(tmp_path / "m.pth", "checkpoint"))
    with pytest.raises(SystemExit) as exit_info:
        train_module.main(["--resume", str(beside(tmp_path / "m.pth", "checkpoint"))])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "the checkpoint's configuration is refused" in err and message in err and len(err.splitlines()) == 1


@contextlib.contextmanager
def disk_full_beyond(n_bytes: int):
    """The kernel refuses to grow any file past ``n_bytes`` (EFBIG), as a full disk refuses writes."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the kernel kills the process
    resource.setrlimit(resource.RLIMIT_FSIZE, (n_bytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


def test_a_checkpoint_that_cannot_be_written_stops_the_run_and_keeps_the_best_model(tmp_path, capsys):
    # With these flags a model file is about 130 kB and a checkpoint about 180 kB.
    with disk_full_beyond(150_000), pytest.raises(SystemExit) as exit_info:
        train_module.main(["--model_fn", str(tmp_path / "m.pth"), "--n_epochs", "4", "--checkpoint_every", "1",
                           *DIGITS])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    assert f"{tmp_path / 'm.pth.ckpt'}: could not be saved (File too large)" in err
    assert f"training stopped after epoch 1; the best model so far (epoch 1) is in {tmp_path / 'm.pth'}" in err
    model, saved = load_model(tmp_path / "m.pth")
    assert saved["best_epoch"] == 1 and saved["stopped"] == "checkpoint failed after epoch 1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pth", "m.pth.config.json", "m.pth.history.csv"]


def test_a_model_file_that_cannot_be_written_is_one_line_and_the_old_file_stays(tmp_path, capsys, digit_model):
    (tmp_path / "m.pth").write_bytes(digit_model.read_bytes())
    with disk_full_beyond(50_000), pytest.raises(SystemExit) as exit_info:
        train_module.main(["--model_fn", str(tmp_path / "m.pth"), "--n_epochs", "1", *DIGITS])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err == (f"mnist-train: error: {tmp_path / 'm.pth'}: could not be saved (File too large); "
                   "the file already there is unchanged\n")
    assert (tmp_path / "m.pth").read_bytes() == digit_model.read_bytes()
    # No temporary file left behind.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pth", "m.pth.config.json", "m.pth.history.csv"]


@pytest.mark.parametrize("edit, message", [
    (lambda c: c.update(trainer={}), "the checkpoint's training state is damaged"),
    (lambda c: c["trainer"].update(history=None), "the checkpoint's training state is damaged"),
    (lambda c: c["trainer"].update(rng_cpu=None), "the checkpoint's training state is damaged"),
    (lambda c: c.update(data="x"), "the checkpoint's data fingerprint is damaged"),
    (lambda c: c["config"].pop("dataset"), "the checkpoint is damaged"),
])
def test_a_hand_edited_checkpoint_is_one_line(one_epoch_checkpoint, tmp_path, capsys, edit, message):
    checkpoint = torch.load(one_epoch_checkpoint, weights_only=True)
    edit(checkpoint)
    torch.save(checkpoint, beside(tmp_path / "m.pth", "checkpoint"))
    with pytest.raises(SystemExit) as exit_info:
        train_module.main(["--resume", str(beside(tmp_path / "m.pth", "checkpoint"))])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and message in err and len(err.splitlines()) == 1, err


def test_a_csv_given_as_the_checkpoint_is_one_line(tmp_path, capsys):
    (tmp_path / "train.csv").write_text("a,b\n1,2\n")
    with pytest.raises(SystemExit) as exit_info:
        train_module.main(["--resume", str(tmp_path / "train.csv")])
    assert exit_info.value.code == 2 and "train.csv: not a readable checkpoint" in capsys.readouterr().err


def test_a_checkpoint_from_before_fingerprints_resumes_with_a_note(one_epoch_checkpoint, tmp_path, capsys):
    checkpoint = torch.load(one_epoch_checkpoint, weights_only=True)
    checkpoint["data"] = None  # as the previous release wrote them
    torch.save(checkpoint, beside(tmp_path / "m.pth", "checkpoint"))
    train_module.main(["--resume", str(beside(tmp_path / "m.pth", "checkpoint")), "--verbose", "0"])
    captured = capsys.readouterr()
    assert "holds no fingerprint of its training data (an older release)" in captured.err
    assert "Test accuracy" in captured.out
