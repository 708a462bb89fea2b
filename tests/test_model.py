import pytest
import torch
from hydra.utils import instantiate

from mnist_exp.models import CNN
from tests.helpers import compose


def parameter_count(net):
    return sum(p.numel() for p in net.parameters())


def expected_count(c, hidden=128, k=3, classes=10):
    conv1 = 1 * c * k * k + c
    conv2 = c * 2 * c * k * k + 2 * c
    fc1 = 2 * c * 7 * 7 * hidden + hidden
    fc2 = hidden * classes + classes
    return conv1 + conv2 + fc1 + fc2


def test_default_config_is_exactly_the_tutorial_cnn():
    net = instantiate(compose().model)
    assert parameter_count(net) == 206_922  # the tutorial's 160 + 4,640 + 200,832 + 1,290
    layers = [type(m).__name__ for m in net.modules() if not list(m.children())]
    assert layers == [
        "Conv2d",
        "ReLU",
        "MaxPool2d",
        "Conv2d",
        "ReLU",
        "MaxPool2d",
        "Flatten",
        "Linear",
        "ReLU",
        "Dropout",
        "Linear",
    ]
    assert net.features[0].padding == (1, 1) and net.classifier[1].in_features == 32 * 7 * 7


@pytest.mark.parametrize(
    "overrides, c, hidden, k",
    [
        (["model.channels=32"], 32, 128, 3),
        (["model.channels=8", "model.hidden=64"], 8, 64, 3),
        (["model.kernel_size=5"], 16, 128, 5),
        (["model.channels=64", "model.dropout=0.5"], 64, 128, 3),
    ],
)
def test_sizes_from_the_command_line_give_right_shapes_and_counts(overrides, c, hidden, k):
    net = instantiate(compose(overrides).model)
    assert parameter_count(net) == expected_count(c, hidden, k)
    assert net(torch.randn(5, 1, 28, 28)).shape == (5, 10)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"channels": 0}, "model.channels must be an integer >= 1"),
        ({"hidden": -3}, "model.hidden must be an integer >= 1"),
        ({"kernel_size": 4}, "model.kernel_size must be an odd integer >= 1"),
        ({"dropout": 1.0}, r"model.dropout must be a number in \[0, 1\)"),
    ],
)
def test_bad_sizes_are_rejected_naming_the_key(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CNN(**kwargs)


def test_the_fast_preset_pools_each_block_right_after_its_conv():
    """pool_first: conv -> maxpool -> BN -> ReLU, the same parameters as pooling last, a quarter of the pixels
    through the norm; the network's output keeps its shape."""
    net = instantiate(compose(["experiment=fast"]).model)
    layers = [type(m).__name__ for m in net.features]
    assert layers == ["Conv2d", "MaxPool2d", "BatchNorm2d", "ReLU"] * 2
    pooled_last = CNN(channels=8, batch_norm=True)
    assert parameter_count(net) == parameter_count(pooled_last)
    assert net(torch.randn(5, 1, 28, 28)).shape == (5, 10)
    with pytest.raises(ValueError, match="model.pool_first must be true or false"):
        CNN(pool_first="yes")
