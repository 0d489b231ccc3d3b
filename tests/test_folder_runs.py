"""A colour model from a folder of pictures, through the whole tool: train, evaluate, predict, export,
serve, resume, two ranks, a cache read from disk, and the estimators on (N, H, W, 3) arrays."""

import io
import signal

import numpy as np
import onnxruntime
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from mnist_classifier.cli import evaluate as evaluate_cli
from mnist_classifier.cli import export as export_cli
from mnist_classifier.cli import predict as predict_cli
from mnist_classifier.cli import train as train_module
from mnist_classifier.data import folders
from mnist_classifier.errors import UserError
from mnist_classifier.estimators import Classifier
from mnist_classifier.inference import server
from mnist_classifier.inference.model_file import load_model
from mnist_classifier.inference.predictor import Predictor
from mnist_classifier.models.cnn import ConvClassifier

from .conftest import beside, signal_after_epoch
from .pictures import COLOURS, make_folder, picture
from .test_checkpoint import assert_same_weights, weights
from .test_distributed import finish, torchrun

CNN = ["--model", "cnn", "--channels", "8,16", "--hidden_sizes", "16", "--batch_size", "16", "--seed", "0",
       "--amp", "off", "--verbose", "0"]


def folder_flags(root, data_dir) -> list[str]:
    return ["--dataset", f"folder:{root}", "--data_dir", str(data_dir)]


@pytest.fixture(scope="module")
def colour_model(tmp_path_factory):
    """A small CNN trained on 3 colour classes of mixed formats and sizes (16x16 inputs)."""
    folder = tmp_path_factory.mktemp("colour")
    root = make_folder(folder / "photos", per_class=20)
    model_fn = folder / "m.pth"
    train_module.main(["--model_fn", str(model_fn), *folder_flags(root, folder / "data"), *CNN,
                       "--image_size", "16", "--n_epochs", "8", "--batch_size", "4"])
    return root, model_fn


def test_a_folder_model_learns_and_records_what_it_was_given(colour_model, capsys):
    _, model_fn = colour_model
    model, saved = load_model(model_fn)
    assert saved["preprocessing"] == {"kind": "photo", "shape": [3, 16, 16], "resize": "crop",
                                      "background": [255, 255, 255]}
    assert saved["dataset"]["classes"] == ["cat", "dog", "owl"] and saved["dataset"]["skipped_files"] == 0
    assert saved["config"]["image_size"] == 16 and saved["config"]["model_options"]["global_pool"] is False
    assert isinstance(model, ConvClassifier)
    metrics = evaluate_cli.evaluate_model_file(str(model_fn), model_fn.parent / "evaluation")
    assert metrics["accuracy"] >= 0.8 and metrics["n_test"] == 12


def test_predictor_answers_alike_for_a_path_a_pil_image_and_an_hwc_uint8_array(colour_model):
    root, model_fn = colour_model
    predictor = Predictor(model_fn)
    path = root / "dog" / "1.jpg"
    image = Image.open(path)
    prepared = predictor.image_input(path)
    array = np.round(prepared * 255).astype(np.uint8).transpose(1, 2, 0)  # (H, W, 3), as numpy holds pictures
    by_path, by_image, by_array = (predictor.predict(x)[0] for x in (str(path), image, array))
    assert by_path.label == by_image.label == by_array.label == "dog"
    assert abs(by_path.probability - by_array.probability) < 1e-5
    assert by_path.model_input.shape == (16, 16, 3)


def test_a_photo_is_prepared_for_prediction_exactly_as_the_cache_prepared_it(colour_model, tmp_path):
    _, model_fn = colour_model
    root = make_folder(tmp_path / "photos", per_class=6)
    picture(COLOURS["owl"], (2100, 1500), np.random.default_rng(8)).save(root / "owl" / "large.jpg")  # reduced
    pictures = folders.decode_folder(folders.find_pictures(root), str(tmp_path / "data"), 16, "crop", False, 3)
    rows = np.fromfile(pictures.cache.path, dtype=np.uint8).reshape(-1, 3, 16, 16)
    predictor = Predictor(model_fn)  # a 16x16 RGB crop model, as decoded here
    for name in ("owl/large.jpg", "cat/1.jpg", "dog/4.gif", "owl/5.tiff", "cat/2.webp"):
        prepared = np.round(predictor.image_input(root / name) * 255).astype(np.uint8)
        assert np.array_equal(prepared, rows[pictures.cache.rows.index(name)]), name


def test_mnist_predict_reads_new_photos_and_a_folder(colour_model, tmp_path, capsys):
    root, model_fn = colour_model
    new = tmp_path / "new"
    new.mkdir()
    picture(COLOURS["owl"], (300, 200), np.random.default_rng(5)).save(new / "owl.png")
    picture(COLOURS["cat"], (64, 64), np.random.default_rng(6)).convert("RGBA").save(new / "cat.webp")
    predict_cli.main(["--model_fn", str(model_fn), str(new), "--out", str(tmp_path / "p.csv")])
    table = (tmp_path / "p.csv").read_text()
    assert "owl.png" in table and "cat.webp" in table
    rows = {line.split(",")[0].rsplit("/", 1)[-1]: line.split(",")[1] for line in table.splitlines()[1:]}
    assert rows == {"cat.webp": "cat", "owl.png": "owl"}


def test_the_export_takes_three_channels_of_the_trained_size_and_agrees(colour_model, tmp_path, capsys):
    root, model_fn = colour_model
    out = tmp_path / "m.onnx"
    export_cli.main(["--model_fn", str(model_fn), "--format", "onnx", "--out", str(out)])
    assert "same class for every input" in capsys.readouterr().out
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape[1:] == [3, 16, 16]
    predictor = Predictor(model_fn)
    x = torch.from_numpy(np.stack([predictor.image_input(p) for p in sorted((root / "owl").iterdir())[:5]]))
    expected = predictor.log_probs(x)
    got = torch.from_numpy(session.run(["output"], {"input": x.numpy()})[0])
    assert (got - expected).abs().max().item() <= 1e-4


def test_the_server_takes_uploads_without_the_drawing_pad(colour_model):
    root, model_fn = colour_model
    client = TestClient(server.create_app(model_fn, use_export=False))
    described = client.get("/model").json()
    assert described["drawing"] is False and described["classes"] == ["cat", "dog", "owl"]
    buffer = io.BytesIO()
    picture(COLOURS["cat"], (120, 90), np.random.default_rng(7)).save(buffer, format="JPEG")
    answer = client.post("/predict", files={"file": ("cat.jpg", buffer.getvalue(), "image/jpeg")}).json()
    assert answer["label"] == "cat"
    assert np.array(answer["model_input"]).shape == (16, 16, 3)
    pixels = np.full((3, 16, 16), 0.5).tolist()
    assert client.post("/predict", json={"pixels": pixels}).status_code == 200


@pytest.mark.parametrize("global_pool", [False, True])
def test_a_cnn_reads_pictures_of_any_size(global_pool):
    model = ConvClassifier((3, 16, 16), 3, channels=(4, 8), hidden_sizes=(8,), global_pool=global_pool).eval()
    with torch.inference_mode():
        assert model(torch.rand(2, 3, 16, 16)).shape == model(torch.rand(2, 3, 40, 24)).shape == (2, 3)
    if not global_pool:  # at the trained size the average is an identity: the same as flattening the map
        x = torch.rand(2, 3, 16, 16)
        with torch.inference_mode():
            assert torch.equal(model.features(x), model.features[:-1](x))


def test_a_resumed_folder_run_ends_bit_identical(tmp_path, monkeypatch, capsys):
    root = make_folder(tmp_path / "photos", per_class=10, formats=("png",))
    flags = [*folder_flags(root, tmp_path / "data"), *CNN, "--image_size", "12", "--n_epochs", "4", "--hflip"]
    train_module.main(["--model_fn", str(tmp_path / "whole.pth"), *flags])
    signal_after_epoch(monkeypatch, 2, signal.SIGINT)
    with pytest.raises(SystemExit):
        train_module.main(["--model_fn", str(tmp_path / "split.pth"), *flags])
    monkeypatch.undo()
    train_module.main(["--resume", str(beside(tmp_path / "split.pth", "checkpoint"))])
    assert_same_weights(weights(tmp_path / "whole.pth"), weights(tmp_path / "split.pth"))


def test_a_cache_larger_than_memory_trains_to_the_end(tmp_path, monkeypatch, capsys):
    root = make_folder(tmp_path / "photos", per_class=20, formats=("png",))
    monkeypatch.setattr(folders, "available_memory", lambda: 1000)  # the cache cannot be held in memory
    train_module.main(["--model_fn", str(tmp_path / "m.pth"), *folder_flags(root, tmp_path / "data"), *CNN,
                       "--image_size", "12", "--n_epochs", "8", "--batch_size", "4", "--verbose", "1"])
    out = capsys.readouterr().out
    accuracy = float(out.split("Test accuracy: ")[1].split("%")[0])
    assert accuracy >= 70  # three classes: chance is 33%


def test_two_ranks_train_on_a_folder(tmp_path):
    root = make_folder(tmp_path / "photos", per_class=16, formats=("png",))
    out, _ = finish(torchrun(tmp_path, 2, *folder_flags(root, tmp_path / "data"), *CNN, "--image_size", "12",
                             "--n_epochs", "3", "--batch_size", "4", "--verbose", "1", "--model_fn",
                             str(tmp_path / "m.pth")))
    assert "Test accuracy" in out and "2 processes" in out
    assert load_model(tmp_path / "m.pth")[1]["config"]["world_size"] == 2


def test_the_estimator_fits_hwc_uint8_colour_arrays():
    rng = np.random.default_rng(0)
    names = list(COLOURS)
    y = np.repeat(np.arange(3), 20)
    X = np.stack([np.asarray(picture(COLOURS[names[label]], (12, 12), rng)) for label in y])  # (60, 12, 12, 3)
    assert X.shape == (60, 12, 12, 3) and X.dtype == np.uint8
    model = Classifier(model="cnn", model_options={"channels": [4, 8], "hidden_sizes": [8]}, n_epochs=8,
                       batch_size=4, random_state=0).fit(X, y)
    assert model.record_["kind"] == "photo" and model.record_["shape"] == [3, 12, 12]
    assert model.score(X, y) >= 0.8


def test_the_folder_flags_are_refused_for_other_data(capsys):
    with pytest.raises(SystemExit):
        train_module.main(["--model_fn", "x.pth", "--dataset", "digits", "--image_size", "32"])
    assert "--image_size applies only to --dataset folder:PATH, not to digits" in capsys.readouterr().err



def test_mnist_evaluate_judges_a_folder_model_on_another_folder(colour_model, tmp_path):
    _, model_fn = colour_model
    other = make_folder(tmp_path / "more", per_class=5, classes=("owl", "cat"), seed=3, gray=True)
    metrics = evaluate_cli.evaluate_model_file(str(model_fn), tmp_path / "report", dataset=f"folder:{other}")
    assert metrics["n_test"] == 10 and set(metrics["per_class"]) == {"cat", "dog", "owl"}
    assert metrics["per_class"]["dog"]["support"] == 0 and metrics["per_class"]["owl"]["support"] == 5
    (other / "bird").mkdir()
    picture(COLOURS["cat"], (20, 20), np.random.default_rng(0)).save(other / "bird" / "1.png")
    with pytest.raises(UserError, match="the class folder 'bird' is not one of the model's classes"):
        evaluate_cli.evaluate_model_file(str(model_fn), tmp_path / "report", dataset=f"folder:{other}")
