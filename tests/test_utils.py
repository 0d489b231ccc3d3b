import pytest
import torch

from mnist_classifier.errors import UserError
from mnist_classifier.utils import get_device, get_hidden_sizes, split_data


def test_hidden_sizes_step_evenly_down():
    assert get_hidden_sizes(784, 10, 5) == [630, 476, 322, 168]
    assert get_hidden_sizes(100, 10, 3) == [70, 40]
    assert get_hidden_sizes(784, 10, 1) == []


def test_split_is_random_disjoint_and_sized_by_ratio():
    x = torch.arange(100).float().unsqueeze(1)
    y = torch.arange(100)
    (x_train, y_train), (x_valid, y_valid) = split_data(x, y, train_ratio=0.8)
    assert len(x_train) == 80 and len(x_valid) == 20
    train_ids, valid_ids = set(y_train.tolist()), set(y_valid.tolist())
    assert train_ids.isdisjoint(valid_ids) and train_ids | valid_ids == set(range(100))
    assert torch.equal(x_train.squeeze(1).long(), y_train)  # rows keep their own labels
    assert y_train.tolist() != list(range(80))  # shuffled, not the first 80


def test_cpu_device_and_missing_gpu_refused():
    assert get_device(-1) == torch.device("cpu")
    with pytest.raises(UserError, match="--gpu_id 99"):
        get_device(99)
