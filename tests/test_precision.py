"""--amp auto: bf16 where the hardware runs it faster, fp32 where not; the choice is printed, saved and kept."""

import signal

import pytest
import torch

from mnist_classifier.cli import train as train_module
from mnist_classifier.cli.train import parse_config
from mnist_classifier.errors import UserError
from mnist_classifier.models import MODELS
from mnist_classifier.training import precision
from mnist_classifier.training.checkpoint import load_checkpoint
from mnist_classifier.training.config import from_record
from mnist_classifier.training.precision import BFLOAT16, FLOAT32, choose_precision, probe_bf16_speedup

from .conftest import beside, signal_after_epoch

DIGITS = ["--dataset", "digits", "--batch_size", "64", "--seed", "3", "--lr_schedule", "constant",
          "--hidden_sizes", "32", "--gpu_id", "-1"]


def small_mlp(use_dropout: bool = False) -> torch.nn.Module:
    return MODELS["mlp"].build((64,), 10, True, hidden_sizes=[32, 16], use_dropout=use_dropout)


@pytest.fixture
def cpu_with_bf16_kernels(monkeypatch):
    """This CPU made to report bf16 kernels, so that auto asks the probe, whose answer the test sets."""
    def force_probe(speedup: float) -> None:
        monkeypatch.setattr(precision, "cpu_has_bf16_kernels", lambda: True)
        monkeypatch.setattr(precision, "probe_bf16_speedup", lambda *args: speedup)

    return force_probe


def test_on_and_off_force_the_choice_without_asking_the_hardware(monkeypatch):
    monkeypatch.setattr(precision, "bf16_ruled_out", lambda device: pytest.fail("on/off must not ask"))
    assert choose_precision("on", small_mlp(), (64,), 32).dtype == BFLOAT16
    assert choose_precision("off", small_mlp(), (64,), 32).dtype == FLOAT32


def test_auto_keeps_fp32_on_a_cpu_without_bf16_kernels_and_runs_no_probe(monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_bf16_kernels", lambda: False)
    monkeypatch.setattr(precision, "probe_bf16_speedup", lambda *args: pytest.fail("no probe needed"))
    chosen = choose_precision("auto", small_mlp(), (64,), 32)
    assert chosen.dtype == FLOAT32 and "has no bf16 kernels" in chosen.reason


@pytest.mark.parametrize("speedup, expected", [(2.0, BFLOAT16), (precision.MIN_SPEEDUP, BFLOAT16), (1.1, FLOAT32),
                                               (0.1, FLOAT32)])
def test_auto_follows_the_probe_where_the_cpu_has_bf16_kernels(cpu_with_bf16_kernels, speedup, expected):
    cpu_with_bf16_kernels(speedup)
    chosen = choose_precision("auto", small_mlp(), (64,), 32)
    assert chosen.dtype == expected and f"{speedup:.2f}x" in chosen.reason


@pytest.mark.parametrize("use_dropout, mode", [(False, "train"), (False, "eval"), (True, "train")])
def test_the_probe_times_a_real_step_and_leaves_model_and_random_state_untouched(use_dropout, mode):
    torch.manual_seed(0)
    model = small_mlp(use_dropout)
    model.train(mode == "train")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert any("running_mean" in k for k in before) != use_dropout  # BatchNorm's running stats, or dropout
    rng_before = torch.get_rng_state()
    speedup = probe_bf16_speedup(model, (64,), 32)
    assert 0 < speedup < float("inf")
    assert torch.equal(torch.get_rng_state(), rng_before)  # dropout in the probe drew from its own stream
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights and running stats as they were
    assert all(p.grad is None for p in model.parameters()) and model.training == (mode == "train")


def test_the_flag_takes_auto_on_off_and_the_old_switch_spellings():
    assert parse_config(["--model_fn", "m.pth"]).amp == "auto"
    assert parse_config(["--model_fn", "m.pth", "--amp"]).amp == "on"
    assert parse_config(["--model_fn", "m.pth", "--amp", "off"]).amp == "off"
    assert parse_config(["--model_fn", "m.pth", "--no-amp"]).amp == "off"


def test_files_from_before_auto_read_their_switch_as_the_precision():
    for switch, amp, chosen in ((True, "on", BFLOAT16), (False, "off", FLOAT32)):
        config, facts = from_record({"model_fn": "m.pth", "amp": switch})
        assert (config.amp, facts.precision) == (amp, chosen)


@pytest.mark.parametrize("values, message", [
    ({"amp": "maybe"}, "amp must be one of auto, on, off"),
    ({"amp": "on", "precision": FLOAT32}, "--amp on contradicts the recorded precision float32"),
    ({"amp": "off", "precision": BFLOAT16}, "--amp off contradicts the recorded precision bfloat16"),
    ({"precision": "float16"}, "the precision must be bfloat16 or float32"),
    ({"precision": FLOAT32, "precision_reason": "\x1b[31mred\nline"}, "one line of printable text"),
    ({"precision": FLOAT32, "precision_reason": ["a"]}, "one line of printable text"),
])
def test_impossible_precision_settings_are_refused(values, message):
    with pytest.raises(UserError, match=message):
        from_record({"model_fn": "m.pth", **values})


@pytest.mark.parametrize("speedup, words", [(3.0, "bf16 (auto: a timed step ran 3.00x as fast in bf16)"),
                                            (1.0, "fp32 (auto: a timed step ran 1.00x as fast in bf16)")])
def test_the_choice_is_printed_first_and_saved_in_the_model_file(cpu_with_bf16_kernels, speedup, words, tmp_path,
                                                                  capsys):
    cpu_with_bf16_kernels(speedup)
    train_module.main(["--model_fn", str(tmp_path / "m.pth"), "--n_epochs", "1", *DIGITS])
    first_line = capsys.readouterr().out.splitlines()[0]
    assert words in first_line
    config = torch.load(tmp_path / "m.pth", weights_only=True)["config"]
    assert config["amp"] == "auto" and config["precision"] == (BFLOAT16 if speedup > 1 else FLOAT32)


def test_a_resumed_run_keeps_its_precision_unless_amp_is_given_again(cpu_with_bf16_kernels, tmp_path, monkeypatch,
                                                                     capsys):
    cpu_with_bf16_kernels(3.0)
    signal_after_epoch(monkeypatch, 1, signal.SIGINT)
    with pytest.raises(SystemExit):
        train_module.main(["--model_fn", str(tmp_path / "m.pth"), "--n_epochs", "3", *DIGITS])
    assert load_checkpoint(beside(tmp_path / "m.pth", "checkpoint"))["config"]["precision"] == BFLOAT16
    monkeypatch.undo()
    monkeypatch.setattr(precision, "cpu_has_bf16_kernels", lambda: True)
    monkeypatch.setattr(precision, "probe_bf16_speedup", lambda *args: pytest.fail("a resumed run must not probe"))
    train_module.main(["--resume", str(beside(tmp_path / "m.pth", "checkpoint")), "--n_epochs", "3"])
    assert torch.load(tmp_path / "m.pth", weights_only=True)["config"]["precision"] == BFLOAT16
    capsys.readouterr()

    monkeypatch.undo()
    train_module.main(["--resume", str(beside(tmp_path / "m.pth", "checkpoint")), "--amp", "off"])
    assert torch.load(tmp_path / "m.pth", weights_only=True)["config"]["precision"] == FLOAT32
    assert "fp32 (--amp off)" in capsys.readouterr().out


@pytest.fixture
def bf16_checkpoint(cpu_with_bf16_kernels, tmp_path, monkeypatch):
    """A run interrupted after epoch 1 whose auto precision (by a forced probe) was bf16."""
    cpu_with_bf16_kernels(3.0)
    signal_after_epoch(monkeypatch, 1, signal.SIGINT)
    with pytest.raises(SystemExit):
        train_module.main(["--model_fn", str(tmp_path / "m.pth"), "--n_epochs", "2", *DIGITS])
    monkeypatch.undo()
    return beside(tmp_path / "m.pth", "checkpoint")


def test_amp_auto_given_again_on_resume_chooses_again(bf16_checkpoint, cpu_with_bf16_kernels, tmp_path, capsys):
    cpu_with_bf16_kernels(0.5)
    train_module.main(["--resume", str(bf16_checkpoint), "--amp", "auto"])
    assert "fp32 (auto: a timed step ran 0.50x as fast in bf16)" in capsys.readouterr().out
    assert torch.load(tmp_path / "m.pth", weights_only=True)["config"]["precision"] == FLOAT32


def test_a_bf16_run_resumed_where_bf16_is_ruled_out_chooses_fp32(bf16_checkpoint, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(precision, "cpu_has_bf16_kernels", lambda: False)
    train_module.main(["--resume", str(bf16_checkpoint)])
    assert "fp32 (auto: this CPU" in capsys.readouterr().out
    assert torch.load(tmp_path / "m.pth", weights_only=True)["config"]["precision"] == FLOAT32


def test_a_checkpoint_from_before_auto_resumes_in_its_precision(bf16_checkpoint, tmp_path, capsys):
    checkpoint = torch.load(bf16_checkpoint, weights_only=True)
    for key in ("precision", "precision_reason"):
        del checkpoint["config"][key]
    checkpoint["config"]["amp"] = True  # what releases before --amp auto saved
    torch.save(checkpoint, bf16_checkpoint)
    train_module.main(["--resume", str(bf16_checkpoint)])
    assert "bf16 (kept from the checkpoint)" in capsys.readouterr().out
    config = torch.load(tmp_path / "m.pth", weights_only=True)["config"]
    assert (config["amp"], config["precision"]) == ("on", BFLOAT16)
