import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from mnist_classifier.data.images import image_files, mnist_like, open_image
from mnist_classifier.errors import UserError


def drawn_digit(text: str = "7", size=(90, 70), at=(50, 6), font_size=44, light_background=True) -> Image.Image:
    """A digit as a person might draw or photograph it: dark on light, off-centre, any size."""
    paper, ink = (235, 30) if light_background else (10, 250)
    image = Image.new("L", size, paper)
    ImageDraw.Draw(image).text(at, text, font=ImageFont.load_default(size=font_size), fill=ink)
    return image


def centre_of_mass(array: np.ndarray) -> tuple[float, float]:
    rows, cols = np.indices(array.shape)
    return (rows * array).sum() / array.sum(), (cols * array).sum() / array.sum()


@pytest.mark.parametrize("light_background", [True, False])
def test_a_drawing_becomes_an_mnist_like_input(light_background):
    out = mnist_like(drawn_digit(light_background=light_background))
    assert out.shape == (28, 28) and out.dtype == np.float32
    assert out[0].max() == 0 and out[:, 0].max() == 0  # black background: inverted when it was light
    assert out.max() > 0.7  # a bright digit
    row, col = centre_of_mass(out)
    assert abs(row - 13.5) <= 0.5 and abs(col - 13.5) <= 0.5  # centre of mass at the centre
    ink_rows = np.flatnonzero(out.max(axis=1) > 0.2)
    ink_cols = np.flatnonzero(out.max(axis=0) > 0.2)
    longest = max(ink_rows[-1] - ink_rows[0], ink_cols[-1] - ink_cols[0]) + 1
    assert 18 <= longest <= 21  # fitted into a 20x20 box, as MNIST was


def test_the_same_digit_anywhere_gives_the_same_input():
    a = mnist_like(drawn_digit(at=(5, 5)))
    b = mnist_like(drawn_digit(size=(200, 160), at=(120, 90)))
    assert np.abs(a - b).mean() < 0.02


@pytest.mark.parametrize("colour", [0, 255, 128])
def test_an_empty_image_is_refused(colour):
    with pytest.raises(UserError, match="the image is empty"):
        mnist_like(Image.new("L", (40, 40), colour), name="blank.png")


def test_a_file_that_is_not_an_image_is_refused(tmp_path):
    (tmp_path / "notes.png").write_text("not really a picture")
    with pytest.raises(UserError, match="notes.png: not an image"):
        open_image(tmp_path / "notes.png")
    with pytest.raises(UserError, match="absent.png: no such file"):
        open_image(tmp_path / "absent.png")


def test_folders_expand_to_their_images_in_order(tmp_path):
    for name in ["b.png", "a.jpg", "readme.txt"]:
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in image_files([str(tmp_path)])] == ["a.jpg", "b.png"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="holds no images"):
        image_files([str(tmp_path / "empty")])
