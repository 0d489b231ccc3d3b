import re
from pathlib import Path

import pytest
import torch

from mnist_classifier.errors import UserError
from mnist_classifier.inference import model_file
from mnist_classifier.inference.model_file import load_model, load_model_file, save_model_file
from mnist_classifier.models.mlp import ImageClassifier


def save_small(path: Path, **extra) -> ImageClassifier:
    model = ImageClassifier(12, 3, [8, 5])
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.rand(4, 12)).sum().backward()
    optimizer.step()  # so the optimizer state holds tensors too
    extra.setdefault("dataset", {"name": "t", "task": "classification", "input_shape": [12],
                                 "classes": ["a", "b", "c"]})
    save_model_file(path, model, optimizer, {"lr": 1e-3, "model_fn": str(path)}, TABLE_OF_12, history=[{"epoch": 1}],
                    **extra)
    return model.eval()


TABLE_OF_12 = {"kind": "table", "feature_names": None, "x_mean": [0.0] * 12, "x_std": [1.0] * 12, "y_mean": 0.0,
               "y_std": 1.0}


def test_round_trip_loads_with_weights_only(tmp_path):
    model = save_small(tmp_path / "m.pth", classes=["a", "b", "c"])
    raw = torch.load(tmp_path / "m.pth", weights_only=True)
    assert {"model", "opt", "config", "architecture", "history", "dataset", "preprocessing"} <= raw.keys()
    # Schema 3: each fact once. The classes only in "dataset", the input shape only in the record.
    assert raw["format"] == "mnist_classifier.model/3" and "classes" not in raw
    assert raw["dataset"]["classes"] == ["a", "b", "c"] and "input_shape" not in raw["dataset"]
    assert raw["config"]["lr"] == 1e-3 and raw["architecture"]["hidden_sizes"] == [8, 5]
    rebuilt, payload = load_model(tmp_path / "m.pth")
    x = torch.rand(3, 12)
    torch.testing.assert_close(rebuilt(x), model(x))
    assert not rebuilt.training and payload["dataset"]["classes"] == ["a", "b", "c"]


def test_failed_save_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "m.pth"
    model = save_small(path)

    def dies_halfway(obj, f):
        f.write(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(model_file.torch, "save", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        save_small(path)
    monkeypatch.undo()
    rebuilt, _ = load_model(path)
    x = torch.rand(2, 12)
    torch.testing.assert_close(rebuilt(x), model(x))
    assert [p.name for p in tmp_path.iterdir()] == ["m.pth"]  # no temporary file left behind


class RunsCode:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def test_file_that_would_run_code_is_refused(tmp_path):
    torch.save({"format": model_file.FORMAT, "model": RunsCode(tmp_path / "ran")}, tmp_path / "evil.pth")
    with pytest.raises(UserError, match="evil.pth: refused"):
        load_model_file(tmp_path / "evil.pth")
    assert not (tmp_path / "ran").exists()


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "not a readable model file"),
        (b"\x89PNG\r\n\x1a\n not a model", "not a readable model file"),
        ({"weights": torch.zeros(2)}, "not a model file written by mnist_classifier"),
    ],
)
def test_foreign_or_broken_files_are_refused(tmp_path, content, message):
    path = tmp_path / "other.pth"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    with pytest.raises(UserError, match=f"other.pth: {message}"):
        load_model(path)


def test_truncated_file_is_refused(tmp_path):
    save_small(tmp_path / "m.pth")
    data = (tmp_path / "m.pth").read_bytes()
    (tmp_path / "m.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="m.pth: not a readable model file"):
        load_model(tmp_path / "m.pth")


def test_weights_not_matching_the_architecture_are_refused(tmp_path):
    save_small(tmp_path / "m.pth")
    payload = torch.load(tmp_path / "m.pth", weights_only=True)
    payload["architecture"]["hidden_sizes"] = [9, 5]
    torch.save(payload, tmp_path / "m.pth")
    with pytest.raises(UserError, match="do not match the saved architecture"):
        load_model(tmp_path / "m.pth")


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="no such model file"):
        load_model(tmp_path / "absent.pth")


def test_a_saved_file_gets_the_mode_an_ordinary_write_would(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        save_small(tmp_path / "m.pth")
    finally:
        os.umask(old)
    assert (tmp_path / "m.pth").stat().st_mode & 0o777 == 0o644  # readable by a web server, not 0600


def test_a_release_1_file_still_loads_and_predicts_the_same(tmp_path):
    model = ImageClassifier(784, 10, [16]).eval()
    old = {"format": "mnist_classifier.model/1", "model": model.state_dict(), "opt": {}, "config": {"n_layers": 5},
           "architecture": model.architecture(), "classes": [str(d) for d in range(10)], "history": []}
    torch.save(old, tmp_path / "old.pth")
    rebuilt, payload = load_model(tmp_path / "old.pth")
    assert payload["model_name"] == "mlp" and payload["preprocessing"]["shape"] == [1, 28, 28]
    x = torch.rand(3, 784)
    torch.testing.assert_close(rebuilt(x.view(3, 1, 28, 28)), model(x))


@pytest.mark.parametrize("edit, message", [
    (lambda p: p["dataset"].update(classes=["a", "b"]), "gives 3 outputs, but the file lists 2 classes"),
    (lambda p: p["preprocessing"].update(x_mean=[0.0] * 5, x_std=[1.0] * 5), "does not take the input"),
    (lambda p: p["preprocessing"].update(kind="sound"), "preprocessing record is damaged or edited"),
    (lambda p: p.update(model_name="transformer"), "names the model 'transformer'"),
    (lambda p: p["model"]["layers.0.block.0.weight"].fill_(float("nan")), "NaN or infinite"),
])
def test_a_model_file_whose_parts_disagree_is_refused_by_name(tmp_path, edit, message):
    save_small(tmp_path / "m.pth")
    payload = torch.load(tmp_path / "m.pth", weights_only=True)
    edit(payload)
    torch.save(payload, tmp_path / "m.pth")
    with pytest.raises(UserError, match=message) as refused:
        load_model(tmp_path / "m.pth")
    assert str(refused.value).startswith(str(tmp_path / "m.pth"))


@pytest.mark.parametrize("edit, part", [
    (lambda p: p.update(dataset="x"), "'dataset' is missing or not a dict"),
    (lambda p: p.update(model_name=["mlp"]), "'model_name' is missing or not a str"),
    (lambda p: p.pop("architecture"), "'architecture' is missing or not a dict"),
    (lambda p: p["dataset"].update(classes=3), "its task or classes"),
    (lambda p: p["dataset"].update(task="ranking"), "its task or classes"),
])
def test_a_hand_edited_model_file_is_refused_by_its_schema_in_one_line(tmp_path, edit, part):
    save_small(tmp_path / "m.pth")
    payload = torch.load(tmp_path / "m.pth", weights_only=True)
    edit(payload)
    torch.save(payload, tmp_path / "m.pth")
    with pytest.raises(UserError, match=re.escape(f"m.pth: the file's contents are damaged ({part})")):
        load_model(tmp_path / "m.pth")


def test_a_text_file_given_as_a_model_is_one_line(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(UserError, match="notes.txt: not a readable model file"):
        load_model(tmp_path / "notes.txt")


@pytest.mark.parametrize("family", ["mlp", "cnn"])
def test_model_files_written_before_the_options_rewrite_load_and_predict_the_same(family):
    """Files trained by the code at a4b7edf (digits, committed with the answers that code gave)."""
    import json

    from sklearn.datasets import load_digits

    from mnist_classifier.inference.predictor import Predictor

    folder = Path(__file__).parent / "data" / "models_a4b7edf"
    then = json.loads((folder / "predictions.json").read_text())[family]
    now = Predictor(folder / f"{family}.pth").predict((load_digits().images[:20] / 16).astype("float32"))
    assert [p.label for p in now] == [label for label, _ in then]
    assert [p.probability for p in now] == pytest.approx([probability for _, probability in then], abs=1e-5)
