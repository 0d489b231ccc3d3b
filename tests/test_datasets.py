import gzip
import hashlib

import pytest
import torch
from torchvision import datasets as tv_datasets

from mnist_classifier.data import mnist as data
from mnist_classifier.data.mnist import ensure_fashion_mnist, load_fashion_mnist
from mnist_classifier.errors import UserError
from mnist_classifier.kinds import CLASSIFICATION, REGRESSION, load_dataset

from .conftest import write_fake_mnist


def test_mnist_loader_gives_images_and_class_names(fake_mnist):
    dataset = load_dataset("mnist", str(fake_mnist))
    assert dataset.task == CLASSIFICATION and dataset.input_shape == (1, 28, 28) and dataset.output_size == 10
    assert dataset.train[0].shape == (600, 1, 28, 28) and dataset.test[0].shape == (200, 1, 28, 28)
    prepared = dataset.prepared()
    assert prepared.preprocessing == {"kind": "image", "shape": [1, 28, 28], "style": "digit"}
    assert torch.equal(prepared.train[0], dataset.train[0])  # images in [0, 1] are model input as they are
    assert dataset.metadata()["classes"] == [str(d) for d in range(10)]


def test_digits_needs_no_download():
    dataset = load_dataset("digits")
    (x_train, y_train), (x_test, _) = dataset.train, dataset.test
    assert dataset.input_shape == (1, 8, 8) and len(x_train) + len(x_test) == 1797
    assert 0 <= x_train.min() and x_train.max() <= 1 and y_train.dtype == torch.int64
    assert torch.equal(load_dataset("digits").test[0], x_test)  # the test split is fixed


def test_diabetes_is_standardised_with_training_statistics():
    raw = load_dataset("diabetes")
    dataset = raw.prepared()
    (x_train, y_train), (x_test, _) = dataset.train, dataset.test
    assert dataset.task == REGRESSION and dataset.output_size == 1 and y_train.shape[1] == 1
    torch.testing.assert_close(x_train.mean(dim=0), torch.zeros(10), atol=1e-5, rtol=0)
    torch.testing.assert_close(x_train.std(dim=0), torch.ones(10), atol=1e-5, rtol=0)
    assert abs(y_train.mean().item()) < 1e-5 and abs(x_test.mean().item()) > 1e-4  # test stats not used
    record = dataset.preprocessing
    training_rows = torch.tensor(raw.train[0].to_numpy())
    torch.testing.assert_close(torch.tensor(record["x_mean"], dtype=torch.float64), training_rows.mean(dim=0))
    assert record["y_std"] == pytest.approx(raw.train[1].std().item()) and len(record["x_std"]) == 10
    # The same record applied again (as evaluation does) gives the same tensors: one preprocessing.
    assert torch.equal(raw.prepared(record).test[0], x_test)


def test_unknown_dataset_is_a_clear_error():
    with pytest.raises(UserError, match="unknown; choose one of mnist, fashion-mnist"):
        load_dataset("cifar")


def fake_debian_fashion(folder, tmp_path):
    """Debian's layout: the four official .gz files; returns the MD5s they really have."""
    source = write_fake_mnist(tmp_path / "made") / "MNIST" / "raw"
    folder.mkdir()
    resources = []
    for name, _ in tv_datasets.FashionMNIST.resources:
        packed = gzip.compress((source / name.removesuffix(".gz")).read_bytes())
        (folder / name).write_bytes(packed)
        resources.append((name, hashlib.md5(packed).hexdigest()))
    return resources


def content_md5s(debian, resources) -> dict:
    return {name.removesuffix(".gz"): hashlib.md5(gzip.decompress((debian / name).read_bytes())).hexdigest()
            for name, _ in resources}


def test_fashion_mnist_falls_back_to_the_debian_package(tmp_path, monkeypatch, capsys):
    debian = tmp_path / "debian"
    resources = fake_debian_fashion(debian, tmp_path)
    monkeypatch.setattr(tv_datasets.FashionMNIST, "resources", resources)
    monkeypatch.setattr(data, "FASHION_IDX_MD5", content_md5s(debian, resources))  # checked at every load
    monkeypatch.setattr(data, "_download_from_mirrors", lambda *args: "unreachable (test)")
    assert ensure_fashion_mnist(tmp_path / "data", debian_dir=debian) == "debian"
    assert "Debian's copy" in capsys.readouterr().err
    x, y = load_fashion_mnist(is_train=False, data_dir=tmp_path / "data")
    assert x.shape == (200, 784) and y.max() < 10
    assert load_dataset("fashion-mnist", str(tmp_path / "data")).image_style == "fill"  # clothes fill the frame
    assert ensure_fashion_mnist(tmp_path / "data", debian_dir=debian) == "cache"


def test_fashion_mnist_refuses_a_file_that_fails_its_checksum(tmp_path, monkeypatch):
    debian = tmp_path / "debian"
    resources = fake_debian_fashion(debian, tmp_path)
    resources[0] = (resources[0][0], "0" * 32)
    monkeypatch.setattr(tv_datasets.FashionMNIST, "resources", resources)
    monkeypatch.setattr(data, "_download_from_mirrors", lambda *args: "unreachable (test)")
    with pytest.raises(UserError, match="train-images-idx3-ubyte.gz: does not match the published MD5"):
        ensure_fashion_mnist(tmp_path / "data", debian_dir=debian)


def test_recompressed_fashion_files_pass_on_their_content(tmp_path, monkeypatch):
    debian = tmp_path / "debian"
    resources = fake_debian_fashion(debian, tmp_path)
    contents = content_md5s(debian, resources)
    # Debian's .gz files differ from the official ones byte for byte; their content does not.
    monkeypatch.setattr(tv_datasets.FashionMNIST, "resources", [(name, "0" * 32) for name, _ in resources])
    monkeypatch.setattr(data, "FASHION_IDX_MD5", contents)
    monkeypatch.setattr(data, "_download_from_mirrors", lambda *args: "unreachable (test)")
    assert ensure_fashion_mnist(tmp_path / "data", debian_dir=debian) == "debian"


def test_fashion_mnist_without_any_source_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "_download_from_mirrors", lambda *args: "unreachable (test)")
    with pytest.raises(UserError, match="apt-get install dataset-fashion-mnist"):
        ensure_fashion_mnist(tmp_path / "data", debian_dir=tmp_path / "absent")


def test_a_sources_prefix_names_its_kind_and_its_path():
    from mnist_classifier.kinds import KINDS, kind_of, source_path, with_path

    assert source_path("csv:/a/b:c.csv") == "/a/b:c.csv"  # a colon in the path stays in the path
    assert source_path("mnist") is None and source_path("fashion-mnist") is None and source_path("tsv:x") is None
    assert with_path("csv:rel.csv", "/abs/rel.csv") == "csv:/abs/rel.csv"
    assert [kind_of(name) for name in ("mnist", "digits", "diabetes", "csv:x.csv", "folder:photos")] == [
        KINDS["image"], KINDS["image"], KINDS["table"], KINDS["table"], KINDS["photo"]]
    with pytest.raises(UserError, match="unknown; choose one of mnist, fashion-mnist, digits, diabetes, csv:PATH or "
                                        "folder:PATH"):
        kind_of("tsv:x")
