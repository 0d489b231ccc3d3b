"""The preprocessing record: one way from raw input to model input, for images and tables."""

import numpy as np
import pytest
import torch
from PIL import Image

from mnist_classifier.data import preprocessing
from mnist_classifier.data.preprocessing import (
    check_record,
    fit_table,
    from_model_output,
    image_record,
    prepare_image,
    target_scale,
    to_model_input,
    to_model_target,
)
from mnist_classifier.errors import UserError

DIGITS = image_record((1, 28, 28))


@pytest.mark.parametrize("shape", [(28, 28), (784,), (1, 28, 28), (5, 28, 28), (5, 784), (5, 1, 28, 28)])
def test_images_of_one_or_many_in_any_usual_shape_become_a_batch(shape):
    x = torch.rand(*shape)
    batch = to_model_input(DIGITS, x)
    assert batch.shape == (x.numel() // 784, 1, 28, 28) and batch.dtype == torch.float32
    assert torch.equal(batch.flatten(), x.flatten())


def test_uint8_pixels_are_scaled_from_numpy_and_torch_alike():
    pixels = np.arange(784, dtype=np.int64).reshape(28, 28) % 256
    expected = torch.from_numpy(pixels / 255.0).float().view(1, 1, 28, 28)
    torch.testing.assert_close(to_model_input(DIGITS, pixels.astype(np.uint8)), expected)
    torch.testing.assert_close(to_model_input(DIGITS, torch.from_numpy(pixels.astype(np.uint8))), expected)


@pytest.mark.parametrize("x, message", [
    (np.full((28, 28), np.nan, dtype=np.float32), "NaN or infinite"),
    (np.full((28, 28), 200.0), r"pixel values must lie in \[0, 1\], found 200 to 200"),
    (np.zeros((28, 28), dtype=bool), "expected an array of numbers"),
    (torch.zeros(28, 28, dtype=torch.bool), "expected real numbers"),
    (np.array([object()] * 784), "expected an array of numbers"),
    ([[0.0] * 28, [0.0] * 27], "not a rectangular array"),
    (np.zeros((3, 10)), r"takes inputs of shape \(1, 28, 28\)"),
])
def test_input_that_cannot_be_model_input_is_a_clear_error(x, message):
    with pytest.raises(UserError, match=message):
        to_model_input(DIGITS, x)


def test_table_statistics_come_from_training_rows_and_constant_columns_keep_scale_1():
    x = torch.tensor([[1.0, 5.0], [3.0, 5.0], [5.0, 5.0]])
    y = torch.tensor([[10.0], [20.0], [30.0]])
    record = fit_table(x, y, ["a", "b"])
    assert record["x_mean"] == [3.0, 5.0] and record["x_std"] == [2.0, 1.0]
    # A value the constant column never had stays a small number, not 1e8.
    assert to_model_input(record, [[3.0, 7.0]]).tolist() == [[0.0, 2.0]]
    # Rows are numbers, not pixels: uint8 rows are not divided by 255.
    assert to_model_input(record, np.array([[5, 5]], dtype=np.uint8)).tolist() == [[1.0, 0.0]]
    standardised = to_model_target(record, y)
    torch.testing.assert_close(from_model_output(record, standardised), y)
    assert target_scale(record) == pytest.approx(10.0) and target_scale(DIGITS) == 1.0


def test_pictures_are_prepared_the_way_their_data_set_was_made():
    picture = Image.new("L", (60, 30), 0)
    picture.paste(255, (10, 5, 50, 25))  # a light, wide object on black
    digit = prepare_image(DIGITS, picture)[0]
    clothes = prepare_image(image_record((1, 28, 28), preprocessing.FILL), picture)[0]
    assert digit.shape == clothes.shape == (28, 28)
    # MNIST digits fit 20x20; Fashion-MNIST items fill the 28-pixel frame.
    assert (digit.max(axis=0) > 0.5).sum() == 20 and (clothes.max(axis=0) > 0.5).sum() == 28


@pytest.mark.parametrize("record", [
    {"kind": "image", "shape": [1, 28.5, 28], "style": "digit"},
    {"kind": "image", "shape": [1, 28, 28], "style": "painted"},
    {"kind": "table", "feature_names": None, "x_mean": [0.0], "x_std": [0.0], "y_mean": 0.0, "y_std": 1.0},
    {"kind": "table", "feature_names": None, "x_mean": [0.0, 1.0], "x_std": [1.0], "y_mean": 0.0, "y_std": 1.0},
    {"kind": "table", "feature_names": None, "x_mean": [float("nan")], "x_std": [1.0], "y_mean": 0.0, "y_std": 1.0},
    {"shape": [1, 28, 28]},
])
def test_a_damaged_record_is_refused(record):
    with pytest.raises(UserError, match="m.pth: its preprocessing record is damaged or edited"):
        check_record(record, "m.pth")


def test_each_kind_of_record_is_a_class_that_round_trips_its_plain_values():
    import pandas as pd

    from mnist_classifier.data.preprocessing import check_record
    from mnist_classifier.kinds import KINDS, as_record
    from mnist_classifier.kinds.images import Images
    from mnist_classifier.kinds.tables import Table

    image = Images.fit((1, 28, 28))
    table = Table.fit(pd.DataFrame({"age": [20.0, 40.0, 60.0], "city": ["Oslo", "Oslo", "Riga"]}))
    for record in (image, table):
        plain = record.to_dict()
        assert type(as_record(plain)) is KINDS[plain["kind"]] is type(record)
        assert as_record(plain).to_dict() == plain and check_record(plain, "m.pth") is plain
    assert image.takes_pictures and not table.takes_pictures and table.input_shape == (3,)  # age, city=Oslo, other
    assert table.describe() == "2 columns: 1 number, 1 text (city)"
    assert table.apply({"age": 40.0, "city": "Oslo"}).shape == (1, table.input_shape[0])
    with pytest.raises(UserError, match="picture.png: this model takes table rows"):
        table.prepare_image(None, "picture.png")
    with pytest.raises(UserError, match="damaged or edited"):
        check_record({**image.to_dict(), "kind": "video"}, "m.pth")
