"""A trained classifier from its checkpoint alone (evaluate, predict and export), and what export writes."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from mnist_exp.errors import CheckpointError
from mnist_exp.models import DigitClassifier
from mnist_exp.records.checkpoints import Checkpoint, resolve

__all__ = ["CheckpointError", "RawImageClassifier", "load_classifier", "standalone"]


def load_classifier(checkpoint: Checkpoint | str | Path, map_location: str = "cpu") -> DigitClassifier:
    """The model, its weights and its input transform, rebuilt from the checkpoint's own saved
    hyperparameters (a path is resolved and checked first: mnist_exp/records/checkpoints.py)."""
    if not isinstance(checkpoint, Checkpoint):
        checkpoint = resolve(str(checkpoint), Path.cwd())
    return DigitClassifier.from_checkpoint(checkpoint).to(map_location)


class RawImageClassifier(nn.Module):
    """What export writes: the checkpoint's own input transform, the network and a softmax of the logits
    divided by the checkpoint's temperature (1 unless calibrate=true fitted one), for raw pixel values 0..255."""

    def __init__(self, net: nn.Module, transform: nn.Module, temperature: float = 1.0):
        super().__init__()
        self.net, self.transform = net, transform
        self.register_buffer("temperature", torch.tensor(float(temperature)))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return (self.net(self.transform(images)) / self.temperature).softmax(dim=1)


def standalone(module: DigitClassifier) -> RawImageClassifier:
    """The module's network, input transform and temperature as one model for raw pixels (what export writes
    and MLflow keeps): a copy in fp32 and the default memory layout, in eval mode; the module is untouched."""
    import copy

    net = copy.deepcopy(module.net).float().to(memory_format=torch.contiguous_format)
    return RawImageClassifier(net, copy.deepcopy(module.transform), module.temperature).eval()
