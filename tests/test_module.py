from functools import partial

import pytest
import pytorch_lightning as pl
import torch
from torch import nn

from mnist_exp.models import CNN, DigitClassifier
from mnist_exp.records.checkpoints import read_checkpoint


def make(**kwargs) -> DigitClassifier:
    torch.manual_seed(0)
    return DigitClassifier(CNN(), partial(torch.optim.Adam, lr=1e-3), **kwargs)


def test_tta_averages_probabilities_over_the_image_and_its_one_pixel_shifts():
    module = make(tta_shifts=1).eval()
    images = torch.randn(3, 1, 28, 28)
    views = [images] + [torch.roll(images, s, d) for s, d in ((1, 2), (-1, 2), (1, 3), (-1, 3))]
    expected = torch.stack([module(v).softmax(1) for v in views]).mean(0).log()
    assert torch.allclose(module.forward_tta(images), expected, atol=1e-6)
    assert torch.allclose(make(tta_shifts=0).eval().forward_tta(images).exp(), module(images).softmax(1), atol=1e-6)


def test_label_smoothing_changes_only_the_training_loss():
    module = make(label_smoothing=0.1)
    assert module.train_criterion.label_smoothing == 0.1 and module.criterion.label_smoothing == 0.0


def test_channels_last_gives_the_same_outputs():
    images = torch.randn(4, 1, 28, 28)
    assert torch.allclose(make(channels_last=True)(images), make()(images), atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, message", [({"label_smoothing": 1.0}, "label_smoothing"), ({"tta_shifts": -1}, "tta_shifts")]
)
def test_bad_module_options_name_the_key(kwargs, message):
    with pytest.raises(ValueError, match=f"module.{message}"):
        make(**kwargs)


def test_two_convs_per_block_stack_convs_before_each_pool():
    net = CNN(channels=32, convs_per_block=2, batch_norm=True)
    convs = [m for m in net.features if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(1, 32), (32, 32), (32, 64), (64, 64)]
    assert net(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_a_checkpoint_without_metric_states_still_loads(tmp_path):
    """Checkpoints written before metric states were saved (or trimmed by hand) load with fresh ones."""
    from mnist_exp.models.inference import load_classifier

    module = DigitClassifier(CNN(), partial(torch.optim.Adam, lr=1e-3), net_config={"_target_": "mnist_exp.models.CNN"})
    trainer = pl.Trainer(
        accelerator="cpu", max_epochs=1, logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    trainer.strategy.connect(module)
    path = tmp_path / "old.ckpt"
    trainer.save_checkpoint(path)
    checkpoint = read_checkpoint(path)
    checkpoint["state_dict"] = {
        k: v for k, v in checkpoint["state_dict"].items() if not k.startswith(("train_", "val_acc_best"))
    }
    torch.save(checkpoint, path)
    loaded = load_classifier(path)
    assert torch.equal(loaded.net.features[0].weight, module.net.features[0].weight)
