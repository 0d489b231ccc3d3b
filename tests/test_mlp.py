import pytest
import torch
from torch import nn

from mnist_classifier.models.mlp import Block, ImageClassifier


def test_output_is_a_log_probability_per_class():
    model = ImageClassifier(784, 10, [630, 476, 322, 168]).eval()
    out = model(torch.rand(32, 784))
    assert out.shape == (32, 10)
    assert (out <= 0).all()
    torch.testing.assert_close(out.exp().sum(dim=-1), torch.ones(32))


def test_sizes_come_from_the_arguments():
    model = ImageClassifier(input_size=13, output_size=3, hidden_sizes=[7]).eval()
    assert model(torch.rand(5, 13)).shape == (5, 3)


@pytest.mark.parametrize("use_batch_norm, regularizer", [(True, nn.BatchNorm1d), (False, nn.Dropout)])
def test_block_is_linear_leaky_relu_then_regularizer(use_batch_norm, regularizer):
    block = Block(20, 8, use_batch_norm=use_batch_norm, dropout_p=0.25)
    layers = list(block.block)
    assert [type(layer) for layer in layers] == [nn.Linear, nn.LeakyReLU, regularizer]
    assert (layers[0].in_features, layers[0].out_features) == (20, 8)
    if not use_batch_norm:
        assert layers[2].p == 0.25


def test_classifier_stacks_blocks_then_linear_and_log_softmax():
    model = ImageClassifier(30, 4, [20, 10], use_batch_norm=False, dropout_p=0.1)
    layers = list(model.layers)
    assert [type(layer) for layer in layers] == [Block, Block, nn.Linear, nn.LogSoftmax]
    assert [(b.block[0].in_features, b.block[0].out_features) for b in layers[:2]] == [(30, 20), (20, 10)]
    assert (layers[2].in_features, layers[2].out_features) == (10, 4)


def test_architecture_rebuilds_an_equal_model():
    model = ImageClassifier(30, 4, [20, 10], use_batch_norm=False, dropout_p=0.1)
    copy = ImageClassifier(**model.architecture())
    copy.load_state_dict(model.state_dict())
    x = torch.rand(6, 30)
    torch.testing.assert_close(copy.eval()(x), model.eval()(x))


def test_images_are_flattened_by_the_model_itself():
    model = ImageClassifier(784, 10, [32]).eval()
    images = torch.rand(4, 1, 28, 28)
    torch.testing.assert_close(model(images), model(images.view(4, 784)))
    assert next(iter(model.state_dict())) == "layers.0.block.0.weight"  # release-1 files keep their names
