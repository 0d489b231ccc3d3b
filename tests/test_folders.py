"""``--dataset folder:PATH``: pictures of any format, colour and size, read once into a uint8 cache."""

import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mnist_classifier.data import folders, image_cache
from mnist_classifier.data.pictures import BACKGROUND, fit_picture
from mnist_classifier.errors import UserError
from mnist_classifier.kinds import load_dataset

from .pictures import COLOURS, make_folder, picture


def load(root: Path, tmp_path: Path, **options):
    return load_dataset(f"folder:{root}", str(tmp_path / "data"), **options)


def test_every_format_is_read_in_colour_with_a_seeded_stratified_split(tmp_path):
    root = make_folder(tmp_path / "photos", per_class=12)
    dataset = load(root, tmp_path)
    assert dataset.classes == ["cat", "dog", "owl"]
    assert dataset.input_shape == (3, 30, 30)  # the median short side of 24, 30 and 30
    x, y = dataset.train
    assert x.dtype == torch.uint8 and tuple(x.shape[1:]) == (3, 30, 30)
    assert len(y) + len(dataset.test[1]) == 36
    assert sorted(torch.bincount(dataset.test[1]).tolist()) == [2, 3, 3]  # 20% of each class
    assert dataset.found.startswith("folder photos: 3 classes (cat 12, dog 12, owl 12), RGB, sizes 24-52 px -> 30x30")
    again = load(root, tmp_path)
    assert torch.equal(again.test[0], dataset.test[0]) and torch.equal(again.train[1], dataset.train[1])


def test_the_pixels_are_the_pictures_resized_by_the_policy(tmp_path):
    root = make_folder(tmp_path / "photos", per_class=4, formats=("png",), sizes=((40, 30),))
    pictures = folders.decode_folder(folders.find_pictures(root), str(tmp_path / "data"), 16, "crop", False)
    rows = np.fromfile(pictures.cache.path, dtype=np.uint8).reshape(-1, 3, 16, 16)
    for i, rel in enumerate(pictures.cache.rows):
        with Image.open(root / rel) as image:
            assert np.array_equal(rows[i], fit_picture(image, 16, 3, "crop"))
    # The centre of each picture is its class's colour, in the right channel order.
    cat = rows[pictures.cache.rows.index("cat/0.png")]
    assert tuple(cat[:, 8, 8]) == COLOURS["cat"]


def test_grayscale_folders_stay_one_channel_and_a_mixed_one_becomes_rgb(tmp_path):
    gray = make_folder(tmp_path / "gray", per_class=5, gray=True, formats=("png", "jpg"))
    assert load(gray, tmp_path).input_shape[0] == 1
    mixed = make_folder(tmp_path / "mixed", per_class=5, gray=True, formats=("png",))
    picture(COLOURS["cat"], (24, 24), np.random.default_rng(1)).save(mixed / "cat" / "colour.png")
    dataset = load(mixed, tmp_path)
    assert dataset.input_shape[0] == 3 and "RGB" in dataset.found


def test_transparency_is_laid_on_the_one_background(tmp_path):
    image = Image.new("RGBA", (20, 20), (0, 0, 0, 0))  # fully transparent black
    image.paste((200, 10, 10, 255), (5, 5, 15, 15))
    array = fit_picture(image, 20, 3)
    assert tuple(array[:, 0, 0]) == BACKGROUND and tuple(array[:, 10, 10]) == (200, 10, 10)
    palette = image.convert("P")  # a palette with a transparent entry, as GIFs have
    palette.info["transparency"] = palette.getpixel((0, 0))
    assert tuple(fit_picture(palette, 20, 3)[:, 0, 0]) == BACKGROUND


def test_an_animated_gif_is_read_by_its_first_frame(tmp_path):
    make_folder(tmp_path / "photos", per_class=4, formats=("png",))
    frames = [Image.new("RGB", (24, 24), colour) for colour in ((250, 0, 0), (0, 0, 250))]
    frames[0].save(tmp_path / "photos" / "cat" / "anim.gif", save_all=True, append_images=frames[1:])
    pictures = folders.decode_folder(folders.find_pictures(tmp_path / "photos"), str(tmp_path / "data"), 8, "crop",
                                     False)
    rows = np.fromfile(pictures.cache.path, dtype=np.uint8).reshape(-1, 3, 8, 8)
    first = rows[pictures.cache.rows.index("cat/anim.gif")]
    assert first[0].mean() > 200 and first[2].mean() < 50


def test_pad_keeps_the_whole_picture_on_the_background(tmp_path):
    wide = Image.new("RGB", (40, 20), (0, 0, 0))
    padded = fit_picture(wide, 20, 3, "pad")
    assert tuple(padded[:, 0, 0]) == BACKGROUND and tuple(padded[:, 10, 10]) == (0, 0, 0)
    assert tuple(fit_picture(wide, 20, 3, "crop")[:, 0, 0]) == (0, 0, 0)


def test_other_files_are_ignored_and_unreadable_pictures_named_and_skipped(tmp_path):
    root = make_folder(tmp_path / "photos", per_class=5, formats=("png",))
    (root / "cat" / "README.txt").write_text("notes")
    (root / "dog" / ".DS_Store").write_bytes(b"\0\1")
    (root / "dog" / "broken.jpg").write_bytes(b"not a jpeg at all")
    good = np.asarray(Image.open(root / "owl" / "0.png"))
    Image.fromarray(good).save(root / "owl" / "cut.png")
    (root / "owl" / "cut.png").write_bytes((root / "owl" / "cut.png").read_bytes()[:60])  # a torn file
    dataset = load(root, tmp_path)
    assert len(dataset.train[1]) + len(dataset.test[1]) == 15 and dataset.skipped == 2
    assert "2 files ignored, 2 unreadable" in dataset.found
    assert any(note.startswith(f"skipped {root / 'dog' / 'broken.jpg'}: ") for note in dataset.notes)
    assert any(note.startswith(f"skipped {root / 'owl' / 'cut.png'}: ") for note in dataset.notes)
    assert dataset.metadata()["skipped_files"] == 2
    refused = r"dog/broken\.jpg: cannot be read \(not a picture Pillow can read\); --strict refuses"
    with pytest.raises(UserError, match=refused):
        load(root, tmp_path, strict=True)


@pytest.mark.parametrize("case, message", [
    ("empty class", r"photos/owl: no pictures in this class folder"),
    ("one class", r"only one class \(cat\)"),
    ("no classes", r"no class folders; put each class's pictures in a folder of its own"),
    ("missing", r"no such folder"),
])
def test_a_folder_with_nothing_to_learn_is_one_line(tmp_path, case, message):
    root = tmp_path / "photos"
    if case == "empty class":
        make_folder(root, per_class=3, classes=("cat", "dog"))
        (root / "owl").mkdir()
        (root / "owl" / "notes.txt").write_text("x")
    elif case == "one class":
        make_folder(root, per_class=3, classes=("cat",))
    elif case == "no classes":
        root.mkdir()
        picture(COLOURS["cat"], (10, 10), np.random.default_rng(0)).save(root / "loose.png")
    with pytest.raises(UserError, match=message):
        load(root, tmp_path)


def test_a_link_loop_and_an_unreadable_folder_are_one_line_each_never_a_hang(tmp_path):
    root = make_folder(tmp_path / "photos", per_class=4, formats=("png",))
    os.symlink(root / "cat", root / "cat" / "again")  # cat/again -> cat: a loop
    locked = root / "dog" / "locked"
    locked.mkdir()
    picture(COLOURS["dog"], (10, 10), np.random.default_rng(0)).save(locked / "x.png")
    locked.chmod(0)
    try:
        started = time.monotonic()
        found = folders.find_pictures(root)
    finally:
        locked.chmod(0o755)
    assert time.monotonic() - started < 10
    assert sum(len(v) for v in found.splits.values()) == 12 + (1 if os.geteuid() == 0 else 0)
    assert any(note.endswith("cat/again: skipped, a link to " + str(root / "cat") + ", already read as this class")
               for note in found.notes)
    if os.geteuid() != 0:  # root reads any folder
        assert any("dog/locked: skipped, cannot be read" in note for note in found.notes)


def test_train_valid_and_test_folders_are_the_splits(tmp_path):
    for split, n in (("train", 6), ("val", 2), ("test", 3)):
        make_folder(tmp_path / "photos" / split, per_class=n, formats=("png",), seed=len(split))
    dataset = load(tmp_path / "photos", tmp_path)
    assert len(dataset.train[1]) == 18 and len(dataset.valid[1]) == 6 and len(dataset.test[1]) == 9
    assert "validation from" in dataset.found
    prepared = dataset.prepared()
    assert prepared.valid[0].dtype == torch.uint8 and prepared.input_shape == dataset.input_shape


def test_a_test_split_with_a_class_training_lacks_is_refused(tmp_path):
    make_folder(tmp_path / "photos" / "train", per_class=3, classes=("cat", "dog"))
    make_folder(tmp_path / "photos" / "test", per_class=3, classes=("cat", "owl"))
    with pytest.raises(UserError, match=r"test/owl: a class folder that .*train does not have"):
        load(tmp_path / "photos", tmp_path)


def test_a_warm_cache_decodes_nothing_and_a_changed_file_only_itself(tmp_path):
    root = make_folder(tmp_path / "photos", per_class=6, formats=("png",))
    data_dir = str(tmp_path / "data")

    def decode():
        return folders.decode_folder(folders.find_pictures(root), data_dir, 16, "crop", False)

    first = decode()
    assert first.cache.decoded == 18
    assert decode().cache.decoded == 0
    changed = root / "dog" / "3.png"
    Image.new("RGB", (30, 30), (255, 255, 0)).save(changed)
    os.utime(changed, ns=(time.time_ns(), time.time_ns() + 10**9))  # a new modification time, whatever the clock
    (root / "owl" / "0.png").unlink()
    picture(COLOURS["owl"], (20, 20), np.random.default_rng(9)).save(root / "owl" / "new.png")
    third = decode()
    assert third.cache.decoded == 2  # the changed file and the new one
    rows = np.fromfile(third.cache.path, dtype=np.uint8).reshape(-1, 3, 16, 16)
    assert tuple(rows[third.cache.rows.index("dog/3.png")][:, 8, 8]) == (255, 255, 0)
    assert "owl/0.png" not in third.cache.rows and len(third.cache.rows) == 18
    # A different size is another cache beside this one, not a rebuild of it.
    assert folders.decode_folder(folders.find_pictures(root), data_dir, 8, "crop", False).cache.decoded == 18
    assert decode().cache.decoded == 0


def test_a_cache_larger_than_the_memory_allowed_is_read_in_blocks(tmp_path, monkeypatch):
    root = make_folder(tmp_path / "photos", per_class=20, formats=("png",))
    in_memory = load(root, tmp_path, image_size=12)
    monkeypatch.setattr(folders, "available_memory", lambda: 1000)  # far less than the cache
    monkeypatch.setattr(image_cache, "BLOCK_BYTES", 5 * 3 * 12 * 12)  # blocks of 5 rows
    dataset = load(root, tmp_path, image_size=12)
    x = dataset.train[0]
    assert isinstance(x, image_cache.FileRows) and len(x) == 48
    assert torch.equal(x[torch.arange(len(x))], in_memory.train[0])  # the same rows, read from the map
    order = x.epoch_order(torch.Generator().manual_seed(0))
    assert sorted(order.tolist()) == list(range(48))
    # The order is whole blocks of neighbouring file rows, one after another.
    blocks = [set(chunk.tolist()) for chunk in torch.argsort(x.rows).split(5)]
    i = 0
    while i < len(order):
        block = next(b for b in blocks if int(order[i]) in b)
        assert set(order[i:i + len(block)].tolist()) == block
        i += len(block)


def test_train_and_val_without_test_takes_the_test_rows_from_train(tmp_path):
    make_folder(tmp_path / "photos" / "train", per_class=10, formats=("png",))
    make_folder(tmp_path / "photos" / "val", per_class=2, formats=("png",), seed=1)
    dataset = load(tmp_path / "photos", tmp_path)
    assert len(dataset.valid[1]) == 6 and len(dataset.train[1]) + len(dataset.test[1]) == 30
    assert len(dataset.test[1]) == 6  # 20% of train/
    make_folder(tmp_path / "only_val" / "val", per_class=2, formats=("png",))
    with pytest.raises(UserError, match=r"has val/ but no train/"):
        load(tmp_path / "only_val", tmp_path)


def test_an_empty_test_split_is_one_line(tmp_path):
    make_folder(tmp_path / "photos" / "train", per_class=3, formats=("png",))
    for name in ("cat", "dog", "owl"):
        (tmp_path / "photos" / "test" / name).mkdir(parents=True)
    with pytest.raises(UserError, match=r"photos/test: no pictures in this split"):
        load(tmp_path / "photos", tmp_path)


def test_a_class_whose_pictures_all_fail_to_decode_is_one_line(tmp_path):
    root = make_folder(tmp_path / "photos", per_class=4, formats=("png",))
    for path in (root / "owl").iterdir():
        path.write_bytes(path.read_bytes()[:60])  # the header reads, the pixels do not
    with pytest.raises(UserError, match=r"none of the training pictures of class 'owl' can be read \(4 unreadable"):
        load(root, tmp_path)


def test_a_fifo_named_like_a_picture_and_a_broken_link_are_skipped_and_strict_refuses_them(tmp_path):
    root = make_folder(tmp_path / "photos", per_class=4, formats=("png",))
    os.mkfifo(root / "cat" / "pipe.jpg")
    os.symlink(tmp_path / "nowhere.png", root / "dog" / "gone.png")
    dataset = load(root, tmp_path)
    assert len(dataset.train[1]) + len(dataset.test[1]) == 12
    assert any("pipe.jpg: skipped, not a regular file" in note for note in dataset.notes)
    assert any("gone.png: skipped, cannot be read" in note for note in dataset.notes)
    with pytest.raises(UserError, match="--strict refuses"):
        load(root, tmp_path, strict=True)


def test_a_data_dir_inside_the_folder_is_not_read_as_a_class(tmp_path):
    root = make_folder(tmp_path / "photos", per_class=4, formats=("png",))
    for _ in range(2):  # the second run finds the first run's cache inside the folder
        dataset = load_dataset(f"folder:{root}", str(root))
        assert dataset.classes == ["cat", "dog", "owl"]


def test_a_cache_file_replaced_behind_its_index_is_never_read_with_the_wrong_names(tmp_path):
    root = make_folder(tmp_path / "photos", per_class=4, formats=("png",))
    first = folders.decode_folder(folders.find_pictures(root), str(tmp_path / "data"), 8, "crop", False)
    first.cache.path.write_bytes(bytes(first.cache.path.stat().st_size))  # same size, other content
    again = folders.decode_folder(folders.find_pictures(root), str(tmp_path / "data"), 8, "crop", False)
    assert again.cache.decoded == 12
    rows = np.fromfile(again.cache.path, dtype=np.uint8).reshape(-1, 3, 8, 8)
    assert rows.any(axis=(1, 2, 3)).all()


def test_the_fingerprint_is_the_same_in_memory_and_read_from_disk(tmp_path, monkeypatch):
    from mnist_classifier.data.dataset import fingerprint

    root = make_folder(tmp_path / "photos", per_class=10, formats=("png",))
    in_memory = fingerprint(load(root, tmp_path, image_size=12))
    monkeypatch.setattr(folders, "available_memory", lambda: 1000)
    mapped = load(root, tmp_path, image_size=12)
    assert isinstance(mapped.train[0], image_cache.FileRows) and fingerprint(mapped) == in_memory


def test_a_grey_palette_is_grayscale_and_a_coloured_one_is_colour():
    from mnist_classifier.data.pictures import is_colour

    grey = Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8), mode="L").convert("P")
    assert not is_colour(grey)
    assert is_colour(picture(COLOURS["cat"], (8, 8), np.random.default_rng(0)).convert("P"))
