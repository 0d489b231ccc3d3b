"""The wiring from a configuration: model, loss, schedule, augmentation, memory check."""

from dataclasses import replace

import pytest
import torch

from mnist_classifier.errors import UserError
from mnist_classifier.training.build import build_model, make_augment, make_loss, make_scheduler
from mnist_classifier.training.config import TrainConfig
from mnist_classifier.training.trainer import steps_per_epoch


def test_cosine_schedule_decays_to_zero_over_the_run():
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=0.1)
    config = TrainConfig(model_fn="m.pth", n_epochs=3, batch_size=10)
    scheduler = make_scheduler(optimizer, config, n_train=95)  # 10 batches an epoch
    rates = []
    for _ in range(30):
        optimizer.step()
        scheduler.step()
        rates.append(optimizer.param_groups[0]["lr"])
    assert rates == sorted(rates, reverse=True) and rates[-1] < 1e-12
    config = replace(config, lr_schedule="constant")
    assert make_scheduler(optimizer, config, n_train=95) is None


@pytest.mark.parametrize("n_train, compile, steps", [(95, False, 10), (91, False, 9), (92, False, 10),
                                                     (95, True, 9), (90, True, 9)])
def test_the_schedule_plans_exactly_the_steps_the_trainer_takes(n_train, compile, steps):
    # batch 10: a 1-row last batch is skipped (BatchNorm), and with compile every partial one.
    assert steps_per_epoch(n_train, 10, compile) == steps


def test_label_smoothing_on_log_probabilities():
    log_probs = torch.randn(8, 10).log_softmax(dim=-1)
    target = torch.randint(0, 10, (8,))
    config = TrainConfig(model_fn="m.pth", label_smoothing=0.1)
    expected = 0.9 * torch.nn.functional.nll_loss(log_probs, target) + 0.1 * (-log_probs.mean(dim=-1)).mean()
    torch.testing.assert_close(make_loss(config)(log_probs, target), expected)
    assert isinstance(make_loss(TrainConfig(model_fn="m.pth")), torch.nn.NLLLoss)


def test_rigid_augmentation_for_clothes_shifts_and_mirrors_only():
    config = TrainConfig(model_fn="m.pth", hflip=True, shift_px=1.0)
    augment = make_augment(config, (1, 28, 28))
    assert (augment.max_shift_px, augment.flip_p, augment.max_rotation_deg, augment.elastic_px) == (1.0, 0.5, 0, 0)
    assert make_augment(TrainConfig(model_fn="m.pth"), (1, 28, 28)) is None


def test_a_model_too_large_for_memory_is_refused_before_allocation():
    config = TrainConfig(model_fn="m.pth", model_options={"hidden_sizes": [65536] * 64})
    config = config.validate()
    with pytest.raises(UserError, match=r"parameters and need about .* GiB"):
        build_model(config, (1, 28, 28), 10, "classification", torch.device("cpu"))


@pytest.mark.parametrize("model, shape", [("cnn", (5,)), ("rnn", (5,))])
def test_image_models_refuse_tables_with_the_reason(model, shape):
    config = TrainConfig(model_fn="m.pth", model=model, model_options={})
    config = config.validate()
    with pytest.raises(UserError, match=f"--model {model} cannot read this dataset: it reads images"):
        build_model(config, shape, 3, "classification", torch.device("cpu"))
