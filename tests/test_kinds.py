"""A kind of data is one class: a new one, made here, trains, predicts, is judged and exported with
no other change than its line in ``KINDS``."""

import json
import re
from pathlib import Path

import pytest
import torch

from mnist_classifier import Predictor
from mnist_classifier.cli.evaluate import evaluate_model_file
from mnist_classifier.cli.train import main as train_main
from mnist_classifier.data.dataset import Dataset, split_test
from mnist_classifier.errors import UserError
from mnist_classifier.inference.export import export_model
from mnist_classifier.inference.model_file import load_model
from mnist_classifier.kinds import CLASSIFICATION, KINDS, kind_of
from mnist_classifier.kinds.base import Kind, as_batch, as_float_tensor


class Vectors(Kind):
    """``--dataset vectors:PATH``: a JSON list of ``[features, label]`` pairs, the features a Python
    list of numbers; they reach the model as they are."""

    kind, name, title = "vectors", "vectors of numbers", "vectors"
    prefix = "vectors"

    @classmethod
    def load(cls, dataset: str, data_dir: str, **options) -> Dataset:
        path = Path(dataset.partition(":")[2])
        pairs = json.loads(path.read_text())
        x = torch.tensor([features for features, _ in pairs], dtype=torch.float32)
        labels = sorted({label for _, label in pairs})
        y = torch.tensor([labels.index(label) for _, label in pairs])
        train, test = split_test(x, y, stratify=True)
        return Dataset(f"vectors {path.name}", train, test, CLASSIFICATION, (x.shape[1],), labels)

    @classmethod
    def fit_dataset(cls, dataset, rows=None):
        return cls({"kind": cls.kind, "size": dataset.input_shape[0]})

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.values["size"],)

    def check(self) -> bool:
        return isinstance(self.values.get("size"), int) and self.values["size"] >= 1

    def describe(self) -> str:
        return f"{self.values['size']} numbers"

    def apply(self, x, name: str = "input") -> torch.Tensor:
        batch, _ = as_float_tensor(x, name)
        return as_batch(batch, self.input_shape, name)

    def preparation(self) -> str:
        return "the vector's numbers as float32, unchanged"


@pytest.fixture
def vectors(tmp_path, monkeypatch):
    """The new kind registered, and a file of two clusters of 2-D points, ``east`` and ``west``."""
    monkeypatch.setitem(KINDS, Vectors.kind, Vectors)
    generator = torch.Generator().manual_seed(0)
    points = torch.randn(240, 2, generator=generator) * 0.5
    pairs = [([float(x) + 2, float(y)], "east") for x, y in points[:120]]
    pairs += [([float(x) - 2, float(y)], "west") for x, y in points[120:]]
    path = tmp_path / "points.json"
    path.write_text(json.dumps(pairs))
    return f"vectors:{path}"


def test_a_new_kind_is_one_class_and_one_registry_line(vectors, tmp_path, capsys):
    assert kind_of(vectors) is Vectors
    model_fn = str(tmp_path / "v.pth")
    train_main(["--dataset", vectors, "--model_fn", model_fn, "--n_epochs", "20", "--batch_size", "16",
                "--hidden_sizes", "16", "--seed", "0", "--verbose", "0"])
    # Two clusters 8 standard deviations apart: at most 2 of the 48 test rows may fall on the wrong
    # side of whatever boundary another CPU's float sums draw (100% here).
    accuracy = float(re.search(r"Test accuracy: ([0-9.]+)% \(48 rows\)", capsys.readouterr().out).group(1))
    assert accuracy >= 100 * 46 / 48

    predictor = Predictor(model_fn)
    assert [p.label for p in predictor.predict([[2.5, 0.0], [-1.5, 0.3]])] == ["east", "west"]
    with pytest.raises(UserError, match=r"takes vectors of numbers \(2 numbers\), not images"):
        predictor.predict("picture.png")
    with pytest.raises(UserError, match=r"inputs of shape \(2,\)"):
        predictor.predict([[1.0, 2.0, 3.0]])

    metrics = evaluate_model_file(model_fn, tmp_path / "report")
    assert abs(metrics["accuracy"] - accuracy / 100) < 1e-4 and metrics["unit"] == "rows"  # same rows, same model

    exported = export_model(model_fn, "torchscript", tmp_path / "v.pt")
    description = json.loads(Path(exported.sidecar).read_text())
    assert description["preparation"] == "the vector's numbers as float32, unchanged"
    assert description["input"]["shape"] == ["batch", 2]


def test_a_model_file_of_an_unregistered_kind_is_refused(vectors, tmp_path, monkeypatch):
    model_fn = str(tmp_path / "v.pth")
    train_main(["--dataset", vectors, "--model_fn", model_fn, "--n_epochs", "1", "--batch_size", "16",
                "--seed", "0", "--verbose", "0"])
    monkeypatch.delitem(KINDS, Vectors.kind)
    with pytest.raises(UserError, match="preprocessing record is damaged or edited"):
        load_model(model_fn)


def test_a_kind_without_columns_is_refused_by_mnist_predicts_csv_reader(vectors, tmp_path, capsys):
    from mnist_classifier.cli.predict import main as predict_main

    model_fn = str(tmp_path / "v.pth")
    train_main(["--dataset", vectors, "--model_fn", model_fn, "--n_epochs", "1", "--batch_size", "16",
                "--seed", "0", "--verbose", "0"])
    (tmp_path / "rows.csv").write_text("a,b\n1,2\n")
    with pytest.raises(SystemExit):
        predict_main(["--model_fn", model_fn, str(tmp_path / "rows.csv")])
    assert "takes vectors of numbers: mnist-predict reads images and CSV files" in capsys.readouterr().err


def test_every_built_in_set_has_a_loader_and_one_kind():
    from mnist_classifier.data.datasets import LOADERS

    owners = {name: [kind for kind in KINDS.values() if name in kind.builtins] for name in LOADERS}
    assert all(len(kinds) == 1 for kinds in owners.values()), owners
    assert sorted(name for kind in KINDS.values() for name in kind.builtins) == sorted(LOADERS)
