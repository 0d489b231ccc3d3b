import numpy as np
import pytest
import torch

from mnist_classifier.errors import UserError
from mnist_classifier.inference.model_file import save_model_file
from mnist_classifier.inference.predictor import Predictor
from mnist_classifier.models.mlp import ImageClassifier

from .conftest import render_digit


def test_predicts_drawn_digits_it_has_never_seen_placed_like_this(digit_model, tmp_path):
    paths = []
    for digit in range(10):
        path = tmp_path / f"{digit}.png"
        render_digit(digit, font_size=42, at=(40, 30), size=(120, 110)).save(path)
        paths.append(path)
    predictions = Predictor(digit_model).predict(paths)
    assert [p.label for p in predictions] == [str(d) for d in range(10)]
    assert all(0.5 < p.probability <= 1 and len(p.top_k) == 3 for p in predictions)
    assert predictions[0].model_input.shape == (28, 28)


def test_tensors_and_arrays_of_one_or_many_inputs(digit_model):
    predictor = Predictor(digit_model)
    x = torch.rand(5, 28, 28)
    expected = [str(int(i)) for i in predictor.model(x.view(5, -1)).argmax(dim=-1)]
    assert [p.label for p in predictor.predict(x)] == expected
    assert [p.label for p in predictor.predict(x.view(5, 784).numpy())] == expected
    assert [p.label for p in predictor.predict(x[0])] == expected[:1]
    as_bytes = (x.numpy() * 255).round().astype(np.uint8)  # uint8 images are scaled to [0, 1]
    assert [p.label for p in predictor.predict(as_bytes)] == expected


def test_input_of_another_shape_is_refused(digit_model):
    with pytest.raises(UserError, match=r"takes inputs of shape \(1, 28, 28\).*got an array of shape \(3, 10\)"):
        Predictor(digit_model).predict(np.zeros((3, 10), dtype=np.float32))


def test_regression_model_gets_standardised_input_and_gives_target_units(tmp_path):
    model = ImageClassifier(2, 1, [], classify=False).eval()
    metadata = {"name": "csv:t.csv", "task": "regression", "input_shape": [2], "classes": None}
    record = {"kind": "table", "feature_names": ["a", "b"], "x_mean": [10.0, 20.0], "x_std": [2.0, 4.0],
              "y_mean": 100.0, "y_std": 5.0}
    save_model_file(tmp_path / "r.pth", model, torch.optim.SGD(model.parameters(), lr=0.1), {}, record,
                    dataset=metadata)
    raw = np.array([[12.0, 16.0]], dtype=np.float32)
    standardised = torch.tensor([[1.0, -1.0]])
    expected = model(standardised).item() * 5.0 + 100.0
    (prediction,) = Predictor(tmp_path / "r.pth").predict(raw)
    assert prediction.label == pytest.approx(expected) and prediction.probability is None
    # Table rows are numbers, not pixels: uint8 rows are not divided by 255.
    (as_uint8,) = Predictor(tmp_path / "r.pth").predict(raw.astype(np.uint8))
    assert as_uint8.label == pytest.approx(expected)
    with pytest.raises(UserError, match="numeric features, not images"):
        Predictor(tmp_path / "r.pth").predict("digit.png")
