"""Starting from what exists: torchvision's architectures, their weights through torchvision's API,
another run's model file, a frozen body; and rare classes weighed, sampled and reported."""

import json
import re
import warnings
from urllib.error import URLError

import numpy as np
import pytest
import torch
import torchvision
from sklearn.metrics import balanced_accuracy_score, f1_score
from sklearn.utils.class_weight import compute_class_weight

from mnist_classifier import Predictor
from mnist_classifier.cli import evaluate as evaluate_cli
from mnist_classifier.cli import train as train_module
from mnist_classifier.errors import UserError
from mnist_classifier.inference.model_file import load_model
from mnist_classifier.inference.tta import View, views
from mnist_classifier.models import MODELS, name_of, rebuild
from mnist_classifier.models.torchvision_models import ARCHITECTURES
from mnist_classifier.training import fine_tune
from mnist_classifier.training.build import build_trainer, make_loss
from mnist_classifier.training.config import TrainConfig
from mnist_classifier.training.trainer import balanced_order
from tests.pictures import make_folder

QUICK = ["--batch_size", "32", "--seed", "0", "--verbose", "1"]


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_every_torchvision_architecture_builds_for_the_data_and_trains_a_step(arch):
    torch.manual_seed(0)
    for channels in (1, 3):
        for side in (28, 64):
            model = MODELS[arch].build((channels, side, side), 5, True)
            optimizer = torch.optim.AdamW(model.parameters())
            x, y = torch.rand(2, channels, side, side), torch.tensor([0, 4])
            output = model(x)
            assert output.shape == (2, 5)
            torch.testing.assert_close(output.exp().sum(-1), torch.ones(2))  # log-probabilities
            before = [p.detach().clone() for p in model.parameters()]
            torch.nn.functional.nll_loss(output, y).backward()
            optimizer.step()
            assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert name_of(model) == arch
    again = rebuild(arch, model.architecture())  # what a model file does
    again.load_state_dict(model.state_dict())
    model.eval(), again.eval()
    torch.testing.assert_close(again(x), model(x))


def write_weights(torch_home, arch="resnet18"):
    """A weights file of torchvision's layout where torchvision's API looks for it: made here, not downloaded."""
    torch.manual_seed(1)
    state = torchvision.models.get_model(arch, weights=None).state_dict()
    path, _ = fine_tune.weights_file(arch)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return state


def test_pretrained_weights_come_from_the_cache_adapted_to_grayscale(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda *a, **k: pytest.fail("tried to download"))
    state = write_weights(tmp_path)
    model_fn = tmp_path / "r.pth"
    train_module.main(["--model_fn", str(model_fn), "--dataset", "digits", "--model", "resnet18", "--pretrained",
                       "--n_epochs", "1", "--lr", "1e-9", *QUICK])
    out = capsys.readouterr().out
    assert re.search(r"Started from resnet18's IMAGENET1K_V1 weights \(resnet18-f37072fd\.pth\): 120 of 122 tensors "
                     r"loaded; new: net\.fc\.weight, net\.fc\.bias", out)
    model, _ = load_model(model_fn)
    # With a learning rate of 1e-9 the weights are still the file's: a block's as they were, and the
    # RGB first convolution summed into one grayscale channel.
    torch.testing.assert_close(model.net.layer1[0].conv1.weight, state["layer1.0.conv1.weight"])
    torch.testing.assert_close(model.net.conv1.weight, state["conv1.weight"].sum(1, keepdim=True), atol=1e-6, rtol=0)


def test_pretrained_offline_without_the_file_names_it_and_where_it_comes_from(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def offline(url, *args, **kwargs):
        raise URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(UserError) as error:
        fine_tune.pretrained_state("resnet18")
    message = str(error.value)
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in message
    assert str(tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth") in message


def test_pretrained_without_the_file_is_refused_before_the_pictures_are_decoded(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def offline(url, *args, **kwargs):
        raise URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    root = make_folder(tmp_path / "pics", per_class=4)
    with pytest.raises(SystemExit):
        train_module.main(["--model_fn", str(tmp_path / "m.pth"), "--dataset", f"folder:{root}", "--data_dir",
                           str(tmp_path / "data"), "--model", "resnet18", "--pretrained"])
    assert "resnet18's weights are not in the cache" in capsys.readouterr().err
    assert not (tmp_path / "data").exists()  # no picture was decoded at 224 pixels first


def test_a_damaged_weights_file_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    path, _ = fine_tune.weights_file("resnet18")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a weights file")
    with pytest.raises(UserError, match="resnet18-f37072fd.pth: not readable weights"):
        fine_tune.pretrained_state("resnet18")


@pytest.mark.parametrize("flags, message", [
    (["--model", "cnn", "--pretrained"], "--pretrained needs a torchvision architecture"),
    (["--model", "resnet18", "--pretrained", "--init_from", "x.pth"], "choose one"),
    (["--freeze"], "--freeze trains only a new head"),
    (["--init_from", "x.pth", "--freeze_epochs", "2"], "--freeze_epochs applies only with --freeze"),
    (["--class_weight", "balanced", "--sampler", "balanced"], "choose one"),
])
def test_contradicting_starts_are_refused_before_any_work(flags, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        train_module.main(["--model_fn", str(tmp_path / "m.pth"), "--dataset", "digits", *flags])
    assert stop.value.code == 2
    assert message in capsys.readouterr().err


@pytest.fixture(scope="module")
def digits_cnn(tmp_path_factory):
    folder = tmp_path_factory.mktemp("init")
    model_fn = folder / "digits.pth"
    train_module.main(["--model_fn", str(model_fn), "--dataset", "digits", "--model", "cnn", "--channels", "8,16",
                       "--hidden_sizes", "32", "--n_epochs", "2", *QUICK])
    return model_fn


def test_init_from_the_same_classes_loads_every_tensor(digits_cnn, tmp_path, capsys):
    capsys.readouterr()
    train_module.main(["--model_fn", str(tmp_path / "b.pth"), "--dataset", "digits", "--model", "cnn", "--channels",
                       "8,16", "--hidden_sizes", "32", "--n_epochs", "1", "--lr", "1e-9", "--init_from",
                       str(digits_cnn), *QUICK])
    out = capsys.readouterr().out
    first, _ = load_model(digits_cnn)
    n = len(first.state_dict())
    assert f"Started from {digits_cnn}: {n} of {n} tensors loaded\n" in out
    second, _ = load_model(tmp_path / "b.pth")
    torch.testing.assert_close(second.features[0].block[0].weight, first.features[0].block[0].weight)


def test_init_from_other_classes_keeps_the_body_and_builds_a_new_head(digits_cnn, tmp_path, capsys):
    # Three classes of 8x8 grey pictures: the same input as the digits, other classes.
    root = make_folder(tmp_path / "pics", per_class=20, sizes=((8, 8),), gray=True)
    capsys.readouterr()
    train_module.main(["--model_fn", str(tmp_path / "c.pth"), "--dataset", f"folder:{root}", "--data_dir",
                       str(tmp_path / "data"), "--model", "cnn", "--channels", "8,16", "--hidden_sizes", "32",
                       "--n_epochs", "2", "--init_from", str(digits_cnn), "--freeze", *QUICK])
    out = capsys.readouterr().out
    first, _ = load_model(digits_cnn)
    n = len(first.state_dict())
    head = [name for name in first.state_dict() if name.startswith("head.") and "running" not in name]
    last = sorted({name.rsplit(".", 1)[0] for name in head})[-1]
    assert f"{n - 2} of {n} tensors loaded; new: {last}.weight, {last}.bias" in out
    assert "Epoch 2: the whole model trains from here" in out
    model, saved = load_model(tmp_path / "c.pth")
    assert saved["dataset"]["classes"] == ["cat", "dog", "owl"] and model.output_size == 3


def test_init_from_other_classes_of_the_same_number_still_gets_a_new_head(digits_cnn):
    config = TrainConfig(model_fn="m.pth", model="cnn", model_options={"channels": [8, 16], "hidden_sizes": [32]},
                         init_from=str(digits_cnn))
    config = config.validate()
    torch.manual_seed(0)
    fresh = MODELS["cnn"].build((1, 8, 8), 10, True, channels=[8, 16], hidden_sizes=[32])
    head = fresh.head[2].weight.detach().clone()
    start = fine_tune.initial_weights(config, fresh, classes=list("abcdefghij"))  # ten classes, not the digits
    assert start.new == ["head.2.weight", "head.2.bias"]
    assert torch.equal(fresh.head[2].weight, head)
    same = MODELS["cnn"].build((1, 8, 8), 10, True, channels=[8, 16], hidden_sizes=[32])
    assert fine_tune.initial_weights(config, same, classes=[str(d) for d in range(10)]).new == []


@pytest.mark.parametrize("flags, message", [
    (["--model", "rnn"], "a cnn model file; it can start only a --model cnn run, not --model rnn"),
    (["--model", "cnn", "--channels", "5", "--hidden_sizes", "7"], "none of its weight matrices or kernels fits"),
])
def test_init_from_a_file_that_fits_nothing_is_refused(digits_cnn, tmp_path, capsys, flags, message):
    with pytest.raises(SystemExit):
        train_module.main(["--model_fn", str(tmp_path / "m.pth"), "--dataset", "digits", *flags,
                           "--init_from", str(digits_cnn), *QUICK])
    assert message in capsys.readouterr().err


def test_freeze_trains_only_the_head_for_its_epochs_then_everything(digits_cnn):
    torch.manual_seed(0)
    x, y = torch.rand(64, 1, 8, 8), torch.randint(0, 10, (64,))
    config = TrainConfig(model_fn="m.pth", model="cnn", model_options={"channels": [8, 16], "hidden_sizes": [32]},
                         init_from=str(digits_cnn), freeze=True, freeze_epochs=2, lr_schedule="constant", amp="off")
    config = config.validate()
    trainer = build_trainer(config, (1, 8, 8), 10, 64, torch.device("cpu"), train_targets=y)
    model = trainer.model
    head = fine_tune.head_names(model, fine_tune.Start("x", [], []))
    assert head == {"head.2.weight", "head.2.bias"}  # Flatten, a Block, the last Linear, LogSoftmax
    assert [g["lr"] for g in trainer.optimizer.param_groups] == [config.lr, config.lr * fine_tune.BODY_LR_SHARE]

    def parameters():
        return {name: p.detach().clone() for name, p in model.named_parameters()}

    start = parameters()
    statistics = {name: t.clone() for name, t in model.state_dict().items() if "running" in name}
    trainer.train((x, y), (x, y), n_epochs=2, batch_size=16)
    after_frozen = {name: p.detach().clone() for name, p in trainer.best_state.items() if name in start}
    for name in start:  # best_state may be epoch 1 or 2: both frozen
        assert torch.equal(after_frozen[name], start[name]) != (name in head), name
    for name, value in statistics.items():  # the body's batch norms kept their statistics too
        assert torch.equal(trainer.snapshot["model"][name], value), name
    trainer.train((x, y), (x, y), n_epochs=3, batch_size=16)
    assert trainer.history[-1]["epoch"] == 3
    third = trainer.snapshot["model"]
    assert not torch.equal(third["features.0.block.0.weight"], start["features.0.block.0.weight"])


def test_only_the_first_convolution_is_adapted_to_other_channels(digits_cnn):
    config = TrainConfig(model_fn="m.pth", model="cnn", init_from=str(digits_cnn))
    config = config.validate()
    # The file's convolutions are (8, 1) and (16, 8); these are (4, 1) and (16, 4): the second one's
    # input channels differ, but it is no first convolution, so it stays as built.
    model = MODELS["cnn"].build((1, 8, 8), 10, True, channels=[4, 16], hidden_sizes=[32])
    start = fine_tune.initial_weights(config, model, classes=[str(d) for d in range(10)])
    assert "features.2.block.0.weight" in start.new and "features.0.block.0.weight" in start.new
    grey = torch.randn(16, 3, 3, 3)
    torch.testing.assert_close(fine_tune.adapt_channels(grey, torch.Size([16, 1, 3, 3])), grey.sum(1, keepdim=True))


def test_freeze_on_a_model_that_is_all_head_is_refused(tmp_path, capsys):
    first = tmp_path / "lin.pth"
    train_module.main(["--model_fn", str(first), "--dataset", "digits", "--model", "linear", "--n_epochs", "1",
                       *QUICK])
    with pytest.raises(SystemExit):
        train_module.main(["--model_fn", str(tmp_path / "b.pth"), "--dataset", "digits", "--model", "linear",
                           "--init_from", str(first), "--freeze", *QUICK])
    assert "every parameter of --model linear is its head" in capsys.readouterr().err


def test_a_table_model_starts_only_a_run_on_the_same_columns(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for name, columns in (("a.csv", "x,y,label"), ("b.csv", "x,z,label")):
        rows = [f"{u:.3f},{v:.3f},{int(u > v)}" for u, v in rng.normal(size=(120, 2))]
        (tmp_path / name).write_text(columns + "\n" + "\n".join(rows) + "\n")
    train_module.main(["--model_fn", str(tmp_path / "a.pth"), "--dataset", f"csv:{tmp_path / 'a.csv'}",
                       "--n_epochs", "1", *QUICK])
    with pytest.raises(SystemExit):
        train_module.main(["--model_fn", str(tmp_path / "b.pth"), "--dataset", f"csv:{tmp_path / 'b.csv'}",
                           "--n_epochs", "1", "--init_from", str(tmp_path / "a.pth"), *QUICK])
    assert "trained on the columns x, y, not this table's (x, z)" in capsys.readouterr().err


def test_a_frozen_run_replays_from_its_configuration_file(digits_cnn, tmp_path, capsys):
    model_fn = tmp_path / "f.pth"
    train_module.main(["--model_fn", str(model_fn), "--dataset", "digits", "--model", "cnn", "--channels", "8,16",
                       "--hidden_sizes", "32", "--n_epochs", "1", "--init_from", str(digits_cnn), "--freeze", *QUICK])
    capsys.readouterr()
    train_module.main(["--config", f"{model_fn}.config.json", "--model_fn", str(tmp_path / "g.pth"),
                       "--print_config"])
    out = capsys.readouterr().out
    assert '"freeze": true' in out and '"freeze_head": null' in out  # the replay finds its own head


def test_a_frozen_run_resumes_with_the_same_head(digits_cnn, tmp_path, capsys):
    model_fn = tmp_path / "f.pth"
    train_module.main(["--model_fn", str(model_fn), "--dataset", "digits", "--model", "cnn", "--channels", "8,16",
                       "--hidden_sizes", "32", "--n_epochs", "1", "--lr_schedule", "constant", "--checkpoint_every",
                       "1", "--init_from", str(digits_cnn), "--freeze", *QUICK])
    capsys.readouterr()
    train_module.main(["--resume", f"{model_fn}.ckpt", "--n_epochs", "3"])
    out = capsys.readouterr().out
    assert "Resuming after epoch 1" in out and "Started from" not in out
    assert "Epoch 2: the whole model trains from here" in out
    _, saved = load_model(model_fn)
    assert saved["config"]["freeze_head"] == ["head.2.bias", "head.2.weight"] and len(saved["history"]) == 3


def test_balanced_class_weights_are_scikit_learns_and_weigh_the_loss():
    y = torch.tensor([0] * 12 + [1] * 3 + [2] * 1)
    counts = torch.bincount(y, minlength=4)  # class 3 has no training rows
    loss = make_loss(TrainConfig(model_fn="m.pth", class_weight="balanced"), class_counts=counts)
    present = compute_class_weight("balanced", classes=np.array([0, 1, 2]), y=y.numpy())
    expected_weights = torch.tensor([*present, 0.0], dtype=torch.float32)
    # scikit-learn's rule over the classes present, n / (k * count): 16 / (3 * 12) for class 0, and so on.
    torch.testing.assert_close(loss.weight, expected_weights)
    torch.testing.assert_close(loss.weight, torch.tensor([16 / 36, 16 / 9, 16 / 3, 0.0]))
    log_probs = torch.log_softmax(torch.randn(16, 4, generator=torch.Generator().manual_seed(0)), -1)
    w = loss.weight[y]
    torch.testing.assert_close(loss(log_probs, y), (w * -log_probs[torch.arange(16), y]).sum() / w.sum())
    plain = make_loss(TrainConfig(model_fn="m.pth"))(log_probs, y)
    assert not torch.isclose(loss(log_probs, y), plain)


def test_the_balanced_sampler_draws_each_class_about_equally():
    torch.manual_seed(0)
    y = torch.tensor([0] * 900 + [1] * 90 + [2] * 10)
    drawn = torch.bincount(y[balanced_order(y)], minlength=3)
    assert drawn.sum() == 1000
    assert ((drawn - 333).abs() < 80).all(), drawn  # binomial sd ~15: a margin of 5 sd


def test_an_imbalanced_folder_is_warned_about_and_evaluate_reports_balanced_figures(tmp_path, capsys):
    root = tmp_path / "pics"
    make_folder(root, per_class=40, classes=("cat",), sizes=((8, 8),))
    make_folder(root, per_class=3, classes=("dog", "owl"), sizes=((8, 8),), seed=1)
    model_fn = tmp_path / "m.pth"
    flags = ["--dataset", f"folder:{root}", "--data_dir", str(tmp_path / "data"), "--model", "cnn", "--channels",
             "8", "--hidden_sizes", "16", "--n_epochs", "2", "--batch_size", "8", "--seed", "0", "--verbose", "1"]
    train_module.main(["--model_fn", str(model_fn), *flags])
    assert "warning: imbalanced classes: 'cat' has" in capsys.readouterr().err
    train_module.main(["--model_fn", str(tmp_path / "w.pth"), *flags, "--class_weight", "balanced"])
    assert "imbalanced" not in capsys.readouterr().err
    evaluate_cli.main(["--model_fn", str(model_fn), "--out_dir", str(tmp_path / "ev"), "--json"])
    metrics = json.loads(capsys.readouterr().out)
    matrix = np.array(metrics["confusion_matrix"])
    y_true = np.repeat(np.arange(3), matrix.sum(1))
    y_pred = np.concatenate([np.repeat(np.arange(3), row) for row in matrix])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a class predicted that the test rows lack
        assert metrics["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y_true, y_pred))
    assert metrics["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro", zero_division=0))


def test_tta_averages_the_probabilities_of_the_views_it_names(digits_cnn, tmp_path):
    model_fn = tmp_path / "t.pth"
    train_module.main(["--model_fn", str(model_fn), "--dataset", "digits", "--model", "cnn", "--channels", "8",
                       "--hidden_sizes", "16", "--n_epochs", "1", "--hflip", "--shift_px", "2", *QUICK])
    _, saved = load_model(model_fn)
    assert views(saved["config"]) == [View(), View(flip=True), View(dy=1), View(dy=-1), View(dx=1), View(dx=-1)]
    plain, tta = Predictor(model_fn), Predictor(model_fn, tta=True)
    x = torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(0))

    def moved(dy, dx):  # written out here, independently of the module's shift
        out = torch.zeros_like(x)
        out[..., max(dy, 0):8 + min(dy, 0), max(dx, 0):8 + min(dx, 0)] = \
            x[..., max(-dy, 0):8 + min(-dy, 0), max(-dx, 0):8 + min(-dx, 0)]
        return out

    seen = [x, x.flip(-1), moved(1, 0), moved(-1, 0), moved(0, 1), moved(0, -1)]
    expected = torch.stack([plain.log_probs(v).exp() for v in seen]).mean(0)
    torch.testing.assert_close(tta.log_probs(x).exp(), expected)
    assert not torch.allclose(tta.log_probs(x), plain.log_probs(x))


def test_tta_knows_augments_largest_shift():
    from mnist_classifier.inference.tta import AUGMENT_SHIFT_PX
    from mnist_classifier.training.augment import RandomDistortion

    assert AUGMENT_SHIFT_PX == RandomDistortion().max_shift_px
    assert views({"augment": True})[1:] == [View(dy=1), View(dy=-1), View(dx=1), View(dx=-1)]


def test_tta_shifts_by_augments_own_shift_when_the_run_used_augment():
    assert views({"augment": True, "shift_px": 6.0})[1:] == [View(dy=1), View(dy=-1), View(dx=1), View(dx=-1)]
    assert views({"shift_px": 6.0})[1:] == [View(dy=3), View(dy=-3), View(dx=3), View(dx=-3)]


def test_tta_without_flips_or_shifts_in_training_is_refused(tmp_path):
    model_fn = tmp_path / "m.pth"
    train_module.main(["--model_fn", str(model_fn), "--dataset", "digits", "--hidden_sizes", "16", "--n_epochs", "1",
                       *QUICK])
    with pytest.raises(UserError, match="trained with neither"):
        Predictor(model_fn, tta=True)


def test_the_estimators_take_balanced_class_weights():
    from mnist_classifier import Classifier

    rng = np.random.default_rng(0)
    X = rng.normal(size=(220, 4)).astype(np.float32)
    y = np.array([0] * 200 + [1] * 20)
    X[y == 1] += 1.5
    weighted = Classifier(class_weight="balanced", hidden_sizes=(16,), n_epochs=30, random_state=0).fit(X, y)
    plain = Classifier(hidden_sizes=(16,), n_epochs=30, random_state=0).fit(X, y)
    assert (weighted.predict(X) == 1).sum() > (plain.predict(X) == 1).sum()
