"""Property-based tests: any bytes for the IDX reader, any flags for the command line."""

import math
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torchvision.datasets.mnist import read_image_file

from mnist_classifier.cli.train import parse_config
from mnist_classifier.data.mnist import IMAGES_MAGIC, check_idx
from mnist_classifier.errors import UserError
from mnist_classifier.training.config import TrainConfig

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def idx_bytes():
    """Arbitrary bytes, and bytes that start like a real image file, to reach past the header."""
    header = st.tuples(st.integers(0, 3), st.integers(0, 4), st.integers(0, 4)).map(
        lambda d: struct.pack(">4I", IMAGES_MAGIC, *d))
    return st.one_of(st.binary(max_size=64), st.tuples(header, st.binary(max_size=80)).map(lambda t: t[0] + t[1]))


@FUZZ
@given(idx_bytes())
def test_idx_reader_gives_a_clean_error_or_the_right_array(content):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "images"
        path.write_bytes(content)
        try:
            dims = check_idx(path, IMAGES_MAGIC)
        except UserError as e:
            assert "images" in str(e)
            return
        # Accepted: torchvision must read exactly those bytes, in that shape.
        images = read_image_file(str(path))
        assert tuple(images.shape) == dims
        body = np.frombuffer(content[16:], dtype=np.uint8).reshape(dims)
        assert torch.equal(images, torch.from_numpy(body.copy()))


FLAGS = ["--model_fn", "--gpu_id", "--train_ratio", "--batch_size", "--n_epochs", "--n_layers", "--use_dropout",
         "--dropout_p", "--verbose", "--seed", "--lr", "--lr_schedule", "--hidden_sizes", "--weight_decay",
         "--label_smoothing", "--augment", "--patience", "--preset", "--dataset", "--task", "--loss", "--resume",
         "--checkpoint_every", "--amp", "--compile", "--no_such_flag"]
VALUES = st.one_of(st.sampled_from(["0", "-1", "1", "0.5", "1e9", "nan", "inf", "abc", "", "3,4", "record",
                                    "cosine", "regression", "mse", "m.pth"]),
                   st.text(max_size=8))


@FUZZ
@given(st.lists(st.one_of(st.sampled_from(FLAGS), VALUES), max_size=8))
def test_any_flags_give_a_config_that_validates_or_a_clean_exit_2(argv):
    try:
        config = parse_config(argv)
    except SystemExit as e:
        assert e.code == 2  # argparse's one-line error
        return
    except UserError:
        return  # refused with one clear line by main()
    assert isinstance(config, TrainConfig)
    config.validate()  # what parse_config returns is always valid
    assert 0 < config.train_ratio < 1 and config.batch_size >= 1 and config.n_epochs >= 1
    assert all(math.isfinite(v) for v in vars(config).values() if isinstance(v, float))


@pytest.fixture(autouse=True)
def quiet_argparse(capsys):
    yield
    capsys.readouterr()
