"""Picture folders as real life has them: split folders under other names, names spelt two ways or not
in UTF-8, links between classes (hostile inputs, round four)."""

import os
import unicodedata
from pathlib import Path

import pytest

from mnist_classifier.data import folders
from mnist_classifier.errors import UserError
from mnist_classifier.kinds import load_dataset

from .pictures import make_folder


def load(root: Path, tmp_path: Path, **options):
    return load_dataset(f"folder:{root}", str(tmp_path / "data"), **options)


@pytest.mark.parametrize("train, test", [("Train", "Test"), ("training_set", "test_set"), ("TRAIN", "testing"),
                                         ("train", "Test")])
def test_split_folders_are_recognised_in_any_case_and_by_their_common_names(tmp_path, train, test):
    make_folder(tmp_path / "photos" / train, per_class=5, formats=("png",), classes=("cat", "dog"))
    make_folder(tmp_path / "photos" / test, per_class=2, formats=("png",), classes=("cat", "dog"), seed=1)
    dataset = load(tmp_path / "photos", tmp_path)
    assert dataset.classes == ["cat", "dog"]  # never "Train" and "Test" as two classes
    assert len(dataset.train[1]) == 10 and len(dataset.test[1]) == 4


def test_a_validation_folder_is_the_validation_split(tmp_path):
    make_folder(tmp_path / "photos" / "train", per_class=5, formats=("png",), classes=("cat", "dog"))
    make_folder(tmp_path / "photos" / "validation", per_class=2, formats=("png",), classes=("cat", "dog"), seed=1)
    dataset = load(tmp_path / "photos", tmp_path)
    assert len(dataset.valid[1]) == 4 and "validation from" in dataset.found


def test_two_folders_for_one_split_are_refused(tmp_path):
    for name in ("train", "valid", "validation"):
        make_folder(tmp_path / "photos" / name, per_class=2, formats=("png",), classes=("cat", "dog"))
    with pytest.raises(UserError, match=r"has both valid/ and validation/, two valid splits"):
        load(tmp_path / "photos", tmp_path)


def test_a_class_named_in_nfd_in_one_split_and_nfc_in_another_is_one_class(tmp_path):
    nfc, nfd = unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café")
    for split, name, n in (("train", nfc, 5), ("test", nfd, 2)):
        make_folder(tmp_path / "photos" / split, per_class=n, formats=("png",), classes=("cat", "dog"))
        os.rename(tmp_path / "photos" / split / "cat", tmp_path / "photos" / split / name)
    dataset = load(tmp_path / "photos", tmp_path)
    assert dataset.classes == ["café", "dog"] and len(dataset.test[1]) == 4
    assert sorted(dataset.test[1].tolist()) == [0, 0, 1, 1]


def test_a_class_folder_linked_to_another_class_says_so(tmp_path):
    root = make_folder(tmp_path / "photos", per_class=3, formats=("png",), classes=("cat", "dog"))
    os.symlink(root / "cat", root / "kitten")
    with pytest.raises(UserError, match=r"kitten: no pictures of its own; a link to .*cat, already read as class "
                                        r"'cat'; give each class its own pictures"):
        load(root, tmp_path)


def test_a_link_back_to_the_root_inside_a_class_is_skipped_and_named(tmp_path):
    root = make_folder(tmp_path / "photos", per_class=3, formats=("png",), classes=("cat", "dog"))
    os.symlink(root, root / "cat" / "everything")
    found = folders.find_pictures(root)
    # Before, cat/everything/dog/* were read as cats and dog/ was then "a folder already read".
    assert sorted(index for _, index in found.splits["all"]) == [0, 0, 0, 1, 1, 1]
    assert any(note.endswith(f"cat/everything: skipped, a link back to {root}, which holds the class folders")
               for note in found.notes)


def test_a_class_name_that_is_not_utf8_is_shown_with_a_replacement_character(tmp_path):
    root = make_folder(tmp_path / "photos", per_class=3, formats=("png",), classes=("cat", "dog"))
    os.rename(root / "cat", os.fsdecode(os.fsencode(root) + b"/caf\xe9"))
    dataset = load(root, tmp_path)
    assert dataset.classes == ["caf\ufffd", "dog"]
    assert len(dataset.train[1]) + len(dataset.test[1]) == 6  # the pictures are still read through the real name
    dataset.found.encode("utf-8")  # printable: no surrogates left


@pytest.fixture(scope="module")
def odd_names_model(tmp_path_factory):
    """A small CNN on a folder whose class ``caf\\xe9`` is not UTF-8 and whose ``dog/`` has nested folders."""
    from mnist_classifier.cli import train as train_module

    folder = tmp_path_factory.mktemp("odd")
    root = make_folder(folder / "photos", per_class=6, formats=("png",), classes=("cat", "dog"))
    os.rename(root / "cat", os.fsdecode(os.fsencode(root) + b"/caf\xe9"))
    make_folder(root / "dog" / "more", per_class=2, formats=("png",), classes=("dog",), seed=1)
    make_folder(root / "dog" / "more" / "deeper", per_class=1, formats=("png",), classes=("dog",), seed=2)
    model_fn = folder / "m.pth"
    train_module.main(["--model_fn", str(model_fn), "--dataset", f"folder:{root}", "--data_dir", str(folder / "data"),
                       "--model", "cnn", "--channels", "4", "--hidden_sizes", "8", "--image_size", "12",
                       "--n_epochs", "1", "--batch_size", "8", "--seed", "0", "--amp", "off", "--verbose", "0"])
    return root, model_fn


def test_predict_reads_nested_folders_and_writes_names_that_are_not_utf8(odd_names_model, tmp_path, capsys):
    from mnist_classifier.cli import predict as predict_cli

    root, model_fn = odd_names_model
    out = tmp_path / "predictions.csv"
    predict_cli.main(["--model_fn", str(model_fn), str(root / "dog"), os.fsdecode(os.fsencode(root) + b"/caf\xe9"),
                      "--out", str(out)])
    printed = capsys.readouterr().out
    assert printed.count("\n") == 6 + 2 + 1 + 6  # dog/ (6), dog/more/dog/ (2), dog/more/deeper/dog/ (1), caf\xe9/
    assert "dog/more/deeper/" in printed and "caf\ufffd/" in printed
    written = out.read_text(encoding="utf-8")
    assert written.count("\n") == 1 + 15 and "caf\ufffd" in written


def test_evaluate_and_serve_show_a_name_that_is_not_utf8(odd_names_model, tmp_path):
    from fastapi.testclient import TestClient

    from mnist_classifier.cli import evaluate as evaluate_cli
    from mnist_classifier.inference import server

    root, model_fn = odd_names_model
    metrics = evaluate_cli.evaluate_model_file(str(model_fn), tmp_path / "report")
    assert set(metrics["per_class"]) == {"caf\ufffd", "dog"}
    assert (tmp_path / "report" / "confusion_matrix.png").stat().st_size > 0
    client = TestClient(server.create_app(str(model_fn), use_export=False))
    answer = client.get("/model")
    assert answer.status_code == 200 and answer.json()["classes"] == ["caf\ufffd", "dog"]
    with open(next((root / "dog").glob("*.png")), "rb") as f:
        upload = client.post("/predict", files={"file": ("x.png", f, "image/png")})
    assert upload.status_code == 200 and upload.json()["label"] in ("caf\ufffd", "dog")


def test_a_dim_16_bit_picture_is_one_brightness_at_any_size(tmp_path):
    import numpy as np
    from PIL import Image

    from mnist_classifier.data.images import open_image
    from mnist_classifier.data.pictures import fit_picture

    means = []
    for side in (40, 1600):
        values = np.random.default_rng(0).integers(0, 251, (side, side)).astype(np.uint16)  # at most 250 of 65535
        path = tmp_path / f"dim{side}.png"
        Image.fromarray(values).save(path)
        with Image.open(path) as image:
            assert image.mode.startswith("I;16")
        means.append(float(fit_picture(open_image(str(path)), 16, 1).mean()))
    assert means[0] == means[1] == 0.0  # 250/65535 of full brightness is black in 8 bits, small or large


def decoded(root: Path, tmp_path: Path, side: int = 16):
    return folders.decode_folder(folders.find_pictures(root), str(tmp_path / "data"), side, "crop", False)


def test_a_picture_replaced_with_the_same_size_and_mtime_is_decoded_again(tmp_path):
    import numpy as np
    from PIL import Image

    root = make_folder(tmp_path / "photos", per_class=3, formats=("png",), classes=("cat", "dog"))
    target = root / "cat" / "odd.bmp"  # uncompressed: the same size whatever the colour
    Image.new("RGB", (20, 20), (250, 0, 0)).save(target)
    first = decoded(root, tmp_path)
    before = os.stat(target)
    replacement = tmp_path / "blue.bmp"
    Image.new("RGB", (20, 20), (0, 0, 250)).save(replacement)
    os.replace(replacement, target)  # as rsync -t or unzip leave it: new content, the old size and mtime
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(target).st_size == before.st_size
    again = decoded(root, tmp_path)
    assert again.cache.decoded == 1
    rows = np.fromfile(again.cache.path, dtype=np.uint8).reshape(-1, 3, 16, 16)
    assert tuple(rows[again.cache.rows.index("cat/odd.bmp")][:, 8, 8]) == (0, 0, 250)
    assert first.cache.decoded == 7


def test_a_second_run_waits_for_the_one_building_the_cache(tmp_path, capfd):
    import threading

    import filelock

    from mnist_classifier.data import image_cache

    root = make_folder(tmp_path / "photos", per_class=3, formats=("png",), classes=("cat", "dog"))
    cache = image_cache.cache_folder(str(tmp_path / "data"), root.resolve())
    held = filelock.FileLock(cache / ".lock")
    held.acquire()
    results = []
    second = threading.Thread(target=lambda: results.append(decoded(root, tmp_path)))
    second.start()
    second.join(timeout=2)
    assert second.is_alive() and not results  # waiting, not writing the same files
    held.release()
    second.join(timeout=60)
    assert results and results[0].cache.decoded == 6
    assert "waiting for another run that is building the picture cache" in capfd.readouterr().err


def test_a_folder_keeps_the_caches_of_its_latest_three_shapes(tmp_path):
    root = make_folder(tmp_path / "photos", per_class=3, formats=("png",), classes=("cat", "dog"))
    for side in (8, 10, 12):
        decoded(root, tmp_path, side)
    fourth = decoded(root, tmp_path, 14)
    kept = sorted(p.name for p in fourth.cache.path.parent.glob("pixels-*.u8"))
    assert kept == ["pixels-3-10-crop.u8", "pixels-3-12-crop.u8", "pixels-3-14-crop.u8"]
    assert len(fourth.pruned) == 1 and "removed the picture cache pixels-3-8-crop.u8" in fourth.pruned[0]
    assert decoded(root, tmp_path, 10).cache.decoded == 0  # a kept shape is still warm
