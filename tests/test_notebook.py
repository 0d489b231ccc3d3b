from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from mnist_classifier.data.preprocessing import image_record
from mnist_classifier.inference.model_file import MNIST_METADATA, save_model_file
from mnist_classifier.models import MODELS
from mnist_classifier.training.config import TrainConfig

from .conftest import render_digit

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("model_name", ["mlp", "cnn", "rnn"])
def test_predict_notebook_runs_top_to_bottom(fake_mnist, tmp_path, model_name):
    model = MODELS[model_name].build((1, 28, 28), 10, classify=True).eval()
    config = TrainConfig(model_fn="model.pth", model=model_name, model_options={})
    save_model_file(tmp_path / "model.pth", model, None, config.to_dict(), image_record((1, 28, 28)), history=[],
                    dataset=MNIST_METADATA)
    (tmp_path / "mine").mkdir()
    render_digit(3, 40, (10, 10)).save(tmp_path / "mine" / "three.png")

    notebook = nbformat.read(ROOT / "predict.ipynb", as_version=4)
    first_code = next(cell for cell in notebook.cells if cell.cell_type == "code")
    assert first_code.source.startswith("model_fn = ")  # the path is set in the first code cell
    first_code.source = (f"model_fn = {str(tmp_path / 'model.pth')!r}\ndata_dir = {str(fake_mnist)!r}\n"
                         f"my_images = {str(tmp_path / 'mine')!r}\nn_samples = 10")
    run_in = {"metadata": {"path": str(tmp_path)}}
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources=run_in).execute()

    outputs = [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.get("outputs", [])]
    text = "".join(out.get("text", "") for out in outputs)
    assert "Test accuracy:" in text and "on 200 images" in text and f"a {model_name} trained" in text
    pictures = [out for out in outputs if "image/png" in out.get("data", {})]
    assert len(pictures) == 3  # the test grid, the confusion matrix, the user's own images
