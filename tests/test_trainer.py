from types import SimpleNamespace

import pytest
import torch
from torch import nn

from mnist_classifier.training.callbacks import Callback, EarlyStopping, GradientClipping
from mnist_classifier.training.metrics import evaluate
from mnist_classifier.training.trainer import Trainer, TrainingInterrupted


def config(n_epochs: int, batch_size: int) -> SimpleNamespace:
    # The trainer reads only these three fields: any object carrying them will do.
    return SimpleNamespace(n_epochs=n_epochs, batch_size=batch_size, verbose=0)


def train_slope(n_epochs: int, **trainer_options):
    """Fit y = 2x while validating on y = 0.5x: validation improves, then gets worse."""
    torch.manual_seed(0)
    x = torch.randn(64, 1)
    model = nn.Linear(1, 1, bias=False)
    nn.init.zeros_(model.weight)
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), nn.MSELoss(), **trainer_options)
    history = trainer.train((x, 2 * x), (x, 0.5 * x), config(n_epochs, batch_size=16))
    return trainer, history, model, (x, 0.5 * x)


def test_restores_the_weights_of_the_best_validation_epoch():
    trainer, history, model, valid = train_slope(n_epochs=8)
    losses = [h["valid_loss"] for h in history]
    best = losses.index(min(losses)) + 1
    assert 1 <= best < 8 and losses[-1] > min(losses)  # validation really got worse later
    assert trainer.best_epoch == best
    # The returned weights are those after epoch `best`: a run stopped there ends with the same.
    _, _, stopped_at_best, _ = train_slope(n_epochs=best)
    assert torch.equal(model.weight, stopped_at_best.weight)
    assert abs(evaluate(model, nn.MSELoss(), valid)["loss"] - min(losses)) < 1e-6


def test_fits_a_regression_model_without_log_softmax():
    torch.manual_seed(0)
    x = torch.randn(512, 5)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [0.0], [3.0]]) + 0.01 * torch.randn(512, 1)
    model = nn.Sequential(nn.Linear(5, 32), nn.ReLU(), nn.Linear(32, 1))
    trainer = Trainer(model, torch.optim.Adam(model.parameters(), lr=1e-2), nn.MSELoss())
    history = trainer.train((x[:400], y[:400]), (x[400:], y[400:]), config(n_epochs=30, batch_size=32))
    assert len(history) == 30
    assert "valid_accuracy" not in history[0]
    assert history[-1]["valid_loss"] < history[0]["valid_loss"] / 20
    assert trainer.best_valid_loss < 0.1


def test_classification_records_accuracy_and_learns():
    torch.manual_seed(0)
    y = torch.randint(0, 2, (600,))
    x = torch.randn(600, 2) + 3 * y.unsqueeze(1).float()
    model = nn.Sequential(nn.Linear(2, 8), nn.LeakyReLU(), nn.BatchNorm1d(8), nn.Linear(8, 2), nn.LogSoftmax(-1))
    trainer = Trainer(model, torch.optim.Adam(model.parameters(), lr=1e-2), nn.NLLLoss(), task="classification")
    history = trainer.train((x[:500], y[:500]), (x[500:], y[500:]), config(n_epochs=5, batch_size=64))
    assert [h["epoch"] for h in history] == [1, 2, 3, 4, 5]
    assert history[-1]["valid_accuracy"] > 0.95
    assert all(h["seconds"] > h["valid_seconds"] > 0 for h in history)


def test_a_last_batch_of_one_does_not_break_batch_norm():
    torch.manual_seed(0)
    x, y = torch.randn(65, 3), torch.randint(0, 2, (65,))  # 65 = 2 * 32 + 1
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2), nn.LogSoftmax(-1))
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), nn.NLLLoss())
    history = trainer.train((x, y), (x, y), config(n_epochs=2, batch_size=32))
    assert len(history) == 2


def test_epochs_print_one_line_each_when_verbose(capsys):
    x, y = torch.randn(40, 3), torch.randint(0, 2, (40,))
    model = nn.Sequential(nn.Linear(3, 2), nn.LogSoftmax(-1))
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), nn.NLLLoss(), task="classification")
    trainer.train((x, y), (x, y), SimpleNamespace(n_epochs=3, batch_size=8, verbose=1))
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and lines[2].startswith("Epoch(3/3)") and "valid_accuracy=" in lines[2]


def test_patience_stops_after_that_many_epochs_without_improvement():
    trainer, history, _, _ = train_slope(n_epochs=30, callbacks=[EarlyStopping(2, verbose=False)])
    assert len(history) == trainer.best_epoch + 2 < 30


def test_a_new_concern_is_a_callback_that_sees_every_event_in_order():
    events = []

    class Recorder(Callback):
        def on_train_start(self, trainer):
            events.append("start")

        def on_epoch_start(self, trainer, epoch, n_batches):
            events.append(f"epoch {epoch} of {n_batches} batches")

        def on_batch_end(self, trainer, step):
            events.append(f"batch {step} loss {trainer.running_loss():.3f}")

        def on_epoch_end(self, trainer, record):
            events.append(f"end {record['epoch']}")
            trainer.should_stop = record["epoch"] == 2  # a callback can end the run

        def on_train_end(self, trainer):
            events.append("finish")

    trainer, history, _, _ = train_slope(n_epochs=5, callbacks=[Recorder()])
    assert len(history) == 2
    assert [e.split(" loss")[0] for e in events] == [
        "start", "epoch 1 of 4 batches", "batch 1", "batch 2", "batch 3", "batch 4", "end 1",
        "epoch 2 of 4 batches", "batch 1", "batch 2", "batch 3", "batch 4", "end 2", "finish"]
    assert float(events[5].split("loss ")[1]) > 0  # the running loss is the real mean so far


def test_augment_touches_training_batches_only():
    seen = []

    def mark(x_batch):
        seen.append(len(x_batch))
        return x_batch + 100.0  # far off the data, so a leak into validation would show

    x, y = torch.randn(48, 3), torch.randn(48, 1)
    model = nn.Linear(3, 1)
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.0), nn.MSELoss(), augment=mark)
    history = trainer.train((x, y), (x, y), config(n_epochs=1, batch_size=16))
    assert seen == [16, 16, 16]
    assert abs(history[0]["valid_loss"] - evaluate(model, nn.MSELoss(), (x, y))["loss"]) < 1e-6


def test_under_amp_losses_come_from_float32_log_probabilities():
    torch.manual_seed(0)
    x, y = torch.rand(300, 64), torch.randint(0, 10, (300,))
    model = nn.Sequential(nn.Linear(64, 32), nn.LeakyReLU(), nn.Linear(32, 10), nn.LogSoftmax(-1))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        log_probs = model(x)
    assert log_probs.dtype == torch.bfloat16  # what autocast gives: 3 significant digits
    in_float32 = nn.functional.nll_loss(log_probs.float(), y).item()
    in_bfloat16 = nn.functional.nll_loss(log_probs, y).item()
    assert in_float32 != in_bfloat16
    assert evaluate(model, nn.NLLLoss(), (x, y), amp=True)["loss"] == pytest.approx(in_float32, rel=1e-6)


def test_the_model_file_says_which_epoch_its_optimizer_state_is_from(tmp_path):
    from mnist_classifier.cli.train import main

    # The weights are the best epoch's, the optimizer state the last epoch's: the file says which is which.
    main(["--model_fn", str(tmp_path / "m.pth"), "--dataset", "digits", "--n_epochs", "12", "--lr", "0.3",
          "--lr_schedule", "constant", "--batch_size", "64", "--seed", "0", "--verbose", "0"])
    saved = torch.load(tmp_path / "m.pth", weights_only=True)
    assert saved["opt_epoch"] == len(saved["history"]) == 12
    assert saved["best_epoch"] == min(saved["history"], key=lambda h: h["valid_loss"])["epoch"]
    assert saved["best_epoch"] < saved["opt_epoch"]  # (6 of 12 measured) so the two really differ here


def test_callbacks_add_to_the_default_printers_unless_quiet(capsys):
    class Quiet(Callback):
        pass

    model = nn.Linear(1, 1)
    loud = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), nn.MSELoss(), callbacks=[Quiet()])
    quiet = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), nn.MSELoss(), callbacks=[Quiet()],
                    verbose=False)
    assert [type(c).__name__ for c in loud.callbacks] == ["ProgressBar", "EpochPrinter", "Quiet"]
    assert [type(c).__name__ for c in quiet.callbacks] == ["Quiet"]


def test_gradient_clipping_sees_the_gradients_before_each_step_and_bounds_their_norm():
    norms = []

    class Measure(Callback):  # after the clipping callback: sees what the optimizer will use
        def on_before_optimizer_step(self, trainer):
            norms.append(torch.nn.utils.get_total_norm([p.grad for p in trainer.model.parameters()]).item())

    _, clipped_history, _, _ = train_slope(n_epochs=3, callbacks=[GradientClipping(0.05), Measure()], verbose=False)
    clipped = list(norms)
    norms.clear()
    _, free_history, _, _ = train_slope(n_epochs=3, callbacks=[Measure()], verbose=False)
    assert len(clipped) == len(norms) == 12  # 4 batches a step, 3 epochs
    assert max(clipped) <= 0.05 + 1e-6 < max(norms)  # the slope's first gradients are far larger
    assert clipped_history[0]["train_loss"] > free_history[0]["train_loss"]  # smaller steps: slower at first


def test_an_exception_in_training_reaches_on_exception_then_propagates():
    seen = []

    class Breaks(Callback):
        def on_batch_end(self, trainer, step):
            raise RuntimeError("disk on fire")

    class Watch(Callback):
        def on_exception(self, trainer, error):
            seen.append(str(error))

        def on_train_end(self, trainer):
            seen.append("end")

    with pytest.raises(RuntimeError, match="disk on fire"):
        train_slope(n_epochs=2, callbacks=[Breaks(), Watch()], verbose=False)
    assert seen == ["disk on fire", "end"]


class Counter(Callback):
    """A callback with state: what it counted (subclasses say what they count)."""

    def __init__(self):
        self.n = 0

    def state_dict(self):
        return {"n": self.n}

    def load_state_dict(self, state):
        self.n = state["n"]


def quiet_trainer(model: nn.Module, *callbacks: Callback) -> Trainer:
    return Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), nn.MSELoss(), callbacks=callbacks,
                   verbose=False)


def test_a_callbacks_state_travels_with_the_trainers_state():
    class Epochs(Counter):
        def on_epoch_end(self, trainer, record):
            self.n += 1

    trainer, _, _, _ = train_slope(n_epochs=3, callbacks=[Epochs()], verbose=False)
    state = trainer.snapshot  # what a checkpoint holds: the last epoch, after its callbacks
    assert state["callbacks"] == {"Epochs": {"n": 3}}
    resumed = quiet_trainer(nn.Linear(1, 1, bias=False), Epochs())
    resumed.load_state_dict(state)
    assert resumed.callbacks[0].n == 3


def test_a_checkpoint_after_an_interruption_keeps_the_callbacks_as_the_last_epoch_left_them():
    class Steps(Counter):
        def on_batch_end(self, trainer, step):
            self.n += 1
            if len(trainer.history) == 1 and step == 3:
                trainer.request_stop("SIGINT")  # mid-epoch 2: the checkpoint is epoch 1's

    trainer = quiet_trainer(nn.Linear(1, 1), Steps())
    x = torch.randn(64, 1)
    with pytest.raises(TrainingInterrupted):
        trainer.train((x, x), (x, x), config(5, batch_size=16))
    assert trainer.callbacks[0].n == 7 and trainer.checkpoint_state()["callbacks"] == {"Steps": {"n": 4}}


def test_one_signal_handler_stops_inside_the_loop_and_exits_at_once_outside_it():
    import signal as signals

    from mnist_classifier.training.callbacks import StopOnSignals

    class SignalMidEpoch(Callback):
        def on_batch_end(self, trainer, step):
            if step == 2:
                signals.raise_signal(signals.SIGINT)

    handler = StopOnSignals(announce=False)
    trainer = quiet_trainer(nn.Linear(1, 1), SignalMidEpoch(), handler)
    x = torch.randn(64, 1)
    before = signals.getsignal(signals.SIGINT)
    with handler:
        with pytest.raises(TrainingInterrupted, match="SIGINT during epoch 1"):  # stopped after the batch
            trainer.train((x, x), (x, x), config(3, batch_size=16))
        with pytest.raises(SystemExit) as exit_info:  # outside the loop, e.g. while saving
            signals.raise_signal(signals.SIGINT)
    assert exit_info.value.code == 128 + signals.SIGINT and signals.getsignal(signals.SIGINT) is before


def test_the_task_is_given_never_guessed_from_the_targets():
    # Class indices alone do not make a classification: without a task only the losses are recorded.
    x, y = torch.randn(64, 3), torch.randint(0, 2, (64,))
    model = nn.Sequential(nn.Linear(3, 2), nn.LogSoftmax(-1))
    plain = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), nn.NLLLoss(), verbose=False)
    assert "valid_accuracy" not in plain.train((x, y), (x, y), config(1, batch_size=16))[0]
    told = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), nn.NLLLoss(), verbose=False,
                   task="classification")
    accuracy = told.train((x, y), (x, y), config(1, batch_size=16))[0]["valid_accuracy"]
    assert accuracy == evaluate(model, nn.NLLLoss(), (x, y), task="classification")["accuracy"]


def test_a_stop_asked_in_the_last_trained_batch_still_interrupts_when_the_tail_is_dropped():
    class StopAtTheLastStep(Callback):
        def on_batch_end(self, trainer, step):
            if step == 2:  # 65 rows in batches of 32: steps 1 and 2 train, the 1-row tail is dropped
                trainer.request_stop("SIGINT")

    x, y = torch.randn(65, 3), torch.randn(65, 1)
    trainer = quiet_trainer(nn.Linear(3, 1), StopAtTheLastStep())
    with pytest.raises(TrainingInterrupted, match="SIGINT during epoch 1"):
        trainer.train((x, y), (x, y), config(1, batch_size=32))
