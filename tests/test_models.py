"""The model registry and its CNN and RNN families: every model builds from plain values, reads
(N, C, H, W) images, returns log-probabilities, and rebuilds from what a model file stores."""

import inspect
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from mnist_classifier.models import MODELS, model_options, name_of, rebuild
from mnist_classifier.models.cnn import ConvBlock, ConvClassifier
from mnist_classifier.models.rnn import SequenceClassifier
from mnist_classifier.options import option, options_of

IMAGES = (1, 28, 28)


@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_builds_from_its_defaults_and_rebuilds_from_its_architecture(name):
    model = MODELS[name].build(IMAGES, 10, classify=True).eval()
    x = torch.rand(6, *IMAGES)
    out = model(x)
    assert out.shape == (6, 10) and (out <= 0).all()
    torch.testing.assert_close(out.exp().sum(dim=-1), torch.ones(6))
    assert name_of(model) == name
    copy = rebuild(name, model.architecture())
    copy.load_state_dict(model.state_dict())
    torch.testing.assert_close(copy.eval()(x), out)


@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_can_regress_one_value(name):
    model = MODELS[name].build(IMAGES, 1, classify=False).eval()
    out = model(torch.rand(3, *IMAGES))
    assert out.shape == (3, 1)
    assert isinstance(list(model.modules())[-1], nn.Linear)  # no LogSoftmax: a value, not a probability


@pytest.mark.parametrize("name", list(MODELS))
def test_every_option_default_is_acceptable_and_declared_with_help(name):
    declared = options_of(MODELS[name].Options)
    assert all(opt.help and opt.problem(opt.default) is None for opt in declared.values())
    # The Options dataclass is the family's build(): the same names, the same defaults.
    parameters = inspect.signature(MODELS[name].build).parameters
    assert list(declared) == list(parameters)[3:]
    assert all(opt.default == parameters[n].default or list(parameters[n].default) == opt.default
               for n, opt in declared.items())


def test_an_option_two_families_share_must_mean_one_kind_of_value(monkeypatch):
    assert model_options()["n_layers"][1] == ["mlp", "rnn"]  # one flag, each family's own default

    @dataclass
    class Clashing:
        n_layers: str = option("five", "a word this time")

    clash = SimpleNamespace(Options=Clashing)
    monkeypatch.setitem(MODELS, "clash", clash)
    with pytest.raises(TypeError, match="--n_layers is int for mlp but str for clash"):
        model_options()


def test_cnn_stacks_conv_blocks_and_halves_the_image_each_stage():
    model = ConvClassifier(IMAGES, 10, channels=[8, 16], convs_per_stage=2, hidden_sizes=[32])
    blocks = [m for m in model.features if isinstance(m, ConvBlock)]
    assert len(blocks) == 4
    assert [type(layer) for layer in blocks[0].block] == [nn.Conv2d, nn.LeakyReLU, nn.BatchNorm2d]
    assert model.features(torch.rand(2, *IMAGES)).shape == (2, 16, 7, 7)
    dropout = ConvClassifier(IMAGES, 10, channels=[8], use_batch_norm=False, dropout_p=0.25)
    assert [type(layer) for layer in dropout.features[0].block] == [nn.Conv2d, nn.LeakyReLU, nn.Dropout]


def test_cnn_on_small_images_stops_pooling_at_one_pixel():
    model = ConvClassifier((1, 8, 8), 10, channels=[4, 4, 4, 4, 4]).eval()
    assert model(torch.rand(2, 1, 8, 8)).shape == (2, 10)
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.features) == 3  # 8 -> 4 -> 2 -> 1


@pytest.mark.parametrize("cell, bidirectional", [("lstm", True), ("gru", False)])
def test_rnn_reads_rows_as_time_steps(cell, bidirectional):
    shape = (2, 20, 12)  # two channels: each row of 12 pixels is 24 values, one time step per row
    model = SequenceClassifier(shape, 10, hidden_size=12, n_layers=2, cell=cell, bidirectional=bidirectional)
    assert isinstance(model.rnn, {"lstm": nn.LSTM, "gru": nn.GRU}[cell])
    assert model.rnn.input_size == 24 and model.rnn.bidirectional == bidirectional
    x = torch.rand(3, *shape)
    rows = torch.stack([torch.cat([x[:, 0, r], x[:, 1, r]], dim=-1) for r in range(20)], dim=1)
    model.eval()
    _, state = model.rnn(rows)
    hidden = state[0] if cell == "lstm" else state
    last = torch.cat(list(hidden[-2:] if bidirectional else hidden[-1:]), dim=-1)
    torch.testing.assert_close(model(x), model.head(last))


def test_rnn_trains_under_bfloat16_autocast_on_the_cpu():
    # oneDNN refuses a bfloat16 LSTM on CPUs; the model runs its recurrent layer in float32 there.
    model = SequenceClassifier(IMAGES, 10, hidden_size=8, n_layers=1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(torch.rand(4, *IMAGES))
    nn.functional.nll_loss(out.float(), torch.arange(4)).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("family", ["mlp", "cnn", "rnn"])
def test_a_familys_defaults_are_its_options_defaults(family):
    # Each default written once: build() and the constructors take theirs from the family's Options.
    import inspect

    from mnist_classifier.models import MODELS
    from mnist_classifier.options import options_of

    module = MODELS[family]
    options = options_of(module.Options)
    for function in (module.build, module.MODEL_CLASS.__init__):
        for name, parameter in inspect.signature(function).parameters.items():
            if name in options and parameter.default is not inspect.Parameter.empty:
                default = options[name].default
                if default is None:  # computed from the other options (the MLP's hidden sizes)
                    continue
                assert parameter.default == (tuple(default) if isinstance(default, list) else default), name
    if family == "mlp":
        assert inspect.signature(module.Block).parameters["dropout_p"].default == options["dropout_p"].default
