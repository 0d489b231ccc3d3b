"""``--config FILE``: hostile files are one short line (hostile inputs, round four)."""

import json
import time

import pytest

from mnist_classifier.cli.train import parse_config
from mnist_classifier.errors import UserError

LAYERS = [f"{new}: &{new} [{', '.join([f'*{old}'] * 9)}]\n" for old, new in zip("abcdefgh", "bcdefghi", strict=True)]
LAUGHS = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(LAYERS) + "lr: *i\n"


def test_a_billion_laughs_is_refused_before_it_is_built(tmp_path):
    config = tmp_path / "laughs.yaml"
    config.write_text(LAUGHS)
    assert config.stat().st_size < 600
    started = time.monotonic()
    with pytest.raises(UserError, match=r"laughs.yaml: cannot be read \(it uses an alias \(\*name\)"):
        parse_config(["--model_fn", "m.pth", "--config", str(config)])
    assert time.monotonic() - started < 5


def test_a_config_file_over_a_megabyte_is_refused_unread(tmp_path):
    config = tmp_path / "big.yaml"
    config.write_text("lr: 0.1\n" + "# padding\n" * 200_000)
    with pytest.raises(UserError, match=r"big.yaml: cannot be read \(over 1 MB"):
        parse_config(["--model_fn", "m.pth", "--config", str(config)])


@pytest.mark.parametrize("values", [{"lr": list(range(100_000))}, {"hidden_sizes": [*range(1, 100_000), "x"]}])
def test_a_huge_value_is_cut_in_its_message(tmp_path, values):
    config = tmp_path / "c.json"
    config.write_text(json.dumps(values))
    with pytest.raises(UserError) as refused:
        parse_config(["--model_fn", "m.pth", "--config", str(config)])
    message = str(refused.value)
    assert len(message) < 300 and "characters)" in message and message.startswith(next(iter(values)))
