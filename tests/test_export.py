"""mnist-export: ONNX and TorchScript exports that answer as PyTorch does, with their description."""

import json

import numpy as np
import onnxruntime
import pytest
import torch

from mnist_classifier.cli import export as export_cli
from mnist_classifier.cli import train as train_module
from mnist_classifier.data.preprocessing import to_model_input
from mnist_classifier.inference import export as export_module
from mnist_classifier.inference.export import read_metadata
from mnist_classifier.inference.model_file import load_model
from mnist_classifier.kinds import load_dataset

QUICK = ["--n_epochs", "2", "--batch_size", "64", "--seed", "0", "--verbose", "0"]
MODELS = {
    "mlp": ["--dataset", "digits"],
    "cnn": ["--dataset", "digits", "--model", "cnn", "--channels", "8,16", "--hidden_sizes", "32"],
    "rnn": ["--dataset", "digits", "--model", "rnn", "--hidden_size", "16"],
    "regression": ["--dataset", "diabetes", "--hidden_sizes", "16"],
    "resnet": ["--dataset", "digits", "--model", "resnet18"],  # torchvision's, scaled up to 32 pixels inside
}


@pytest.fixture(scope="module")
def model_files(tmp_path_factory) -> dict:
    """One small trained model file per family, and a regression model."""
    folder = tmp_path_factory.mktemp("exported")
    for name, flags in MODELS.items():
        train_module.main(["--model_fn", str(folder / f"{name}.pth"), *QUICK, *flags])
    return {name: folder / f"{name}.pth" for name in MODELS}


def prepared_test_rows(model_fn) -> torch.Tensor:
    """The model's own test rows, prepared as every consumer prepares them."""
    _, saved = load_model(model_fn)
    x_test, _ = load_dataset(saved["dataset"]["name"]).test
    return to_model_input(saved["preprocessing"], x_test)


def run_export(path, fmt: str, x: torch.Tensor) -> torch.Tensor:
    """The export run as a consumer without this package runs it."""
    if fmt == "onnx":
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return torch.from_numpy(session.run(["output"], {"input": x.numpy()})[0])
    return torch.jit.load(str(path))(x)


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
@pytest.mark.parametrize("name", list(MODELS))
def test_export_answers_as_pytorch_for_any_batch_size(model_files, name, fmt, tmp_path, capsys):
    out = tmp_path / f"{name}.{fmt}"
    export_cli.main(["--model_fn", str(model_files[name]), "--format", fmt, "--out", str(out)])
    assert "same class for every input" in capsys.readouterr().out
    model, saved = load_model(model_files[name])
    x = prepared_test_rows(model_files[name])
    with torch.inference_mode():
        expected = model(x)
    for batch in (x[:1], x[:7], x):  # the batch size is dynamic
        got = run_export(out, fmt, batch)
        assert got.shape == expected[: len(batch)].shape
        assert (got - expected[: len(batch)]).abs().max().item() <= 1e-4
        if name != "regression":
            assert torch.equal(got.argmax(dim=-1), expected[: len(batch)].argmax(dim=-1))


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_the_description_travels_inside_and_beside_the_export(model_files, fmt, tmp_path):
    out = tmp_path / "model.export"
    export_cli.main(["--model_fn", str(model_files["regression"]), "--format", fmt, "--out", str(out)])
    inside, beside = read_metadata(out), json.loads((tmp_path / "model.export.json").read_text())
    _, saved = load_model(model_files["regression"])
    assert inside == beside and inside["preprocessing"] == saved["preprocessing"]
    assert inside["task"] == "regression" and inside["input"]["shape"] == ["batch", 10]
    # A consumer with only the export and its description predicts in the target's units.
    rows, _ = load_dataset("diabetes").test
    raw = torch.tensor(rows.to_numpy())
    record = inside["preprocessing"]
    x = ((raw.double() - torch.tensor(record["x_mean"])) / torch.tensor(record["x_std"])).float()
    predicted = run_export(out, fmt, x).squeeze(-1).double() * record["y_std"] + record["y_mean"]
    from mnist_classifier.inference.predictor import Predictor

    expected = [p.label for p in Predictor(model_files["regression"]).predict(raw.numpy())]
    assert np.allclose(predicted.numpy(), expected, rtol=1e-4, atol=1e-3)


def test_an_export_that_differs_from_pytorch_is_refused_and_not_written(model_files, tmp_path, monkeypatch, capsys):
    def off_by_a_little(data):
        run = export_module.onnx_runner(data)
        return lambda x: run(x) + 1e-3

    monkeypatch.setitem(export_module.BUILDERS, "onnx", (export_module.build_onnx, off_by_a_little))
    with pytest.raises(SystemExit) as exit_info:
        export_cli.main(["--model_fn", str(model_files["mlp"]), "--out", str(tmp_path / "m.onnx")])
    assert exit_info.value.code == 2
    assert "differs from PyTorch by 0.001" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("setup, flags, message", [
    (None, ["--model_fn", "missing.pth"], "missing.pth"),
    (None, ["--format", "tflite"], "invalid choice"),
    ("model", ["--out", "{model}"], "is this run's input (--model_fn)"),
    ("stranger", ["--out", "{tmp}/notes.onnx"], "exists and is not a file of mnist_classifier"),
    ("stranger_json", ["--out", "{tmp}/m.onnx"], "m.onnx.json exists and is not a file of mnist_classifier"),
])
def test_bad_requests_are_one_line_and_exit_2(model_files, tmp_path, capsys, setup, flags, message):
    (tmp_path / "notes.onnx").write_text("my notes")
    (tmp_path / "m.onnx.json").write_text("{}") if setup == "stranger_json" else None
    values = {"model": str(model_files["mlp"]), "tmp": str(tmp_path)}
    argv = ["--model_fn", str(model_files["mlp"]), *[f.format(**values) for f in flags]]
    with pytest.raises(SystemExit) as exit_info:
        export_cli.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert (tmp_path / "notes.onnx").read_text() == "my notes"


def test_an_earlier_export_of_ours_is_replaced_but_never_by_the_other_kind(model_files, tmp_path, capsys):
    out = tmp_path / "m.onnx"
    export_cli.main(["--model_fn", str(model_files["mlp"]), "--out", str(out)])
    export_cli.main(["--model_fn", str(model_files["rnn"]), "--out", str(out)])
    assert read_metadata(out)["model_name"] == "rnn"
    with pytest.raises(SystemExit):  # an export written over a description
        export_cli.main(["--model_fn", str(model_files["mlp"]), "--out", str(tmp_path / "m.onnx.json")])
    assert "m.onnx.json exists and is not a file of mnist_classifier" in capsys.readouterr().err
    assert json.loads((tmp_path / "m.onnx.json").read_text())["model_name"] == "rnn"
