"""Rebuild a trained classifier from its checkpoint alone (used by evaluate, predict and export)."""

from __future__ import annotations

from pathlib import Path

import torch
from hydra.utils import instantiate
from torch import nn

from mnist_exp.checkpoints import (
    CheckpointError,
    check_targets,
    read_checkpoint,
)
from mnist_exp.models import DigitClassifier

__all__ = ["CheckpointError", "RawImageClassifier", "load_classifier"]


def load_classifier(ckpt_path: str | Path, map_location: str = "cpu") -> DigitClassifier:
    """The model, its weights and its input normalization, from a checkpoint written by training.

    The file is read with torch's safe unpickler and its model config may only name allowed model
    classes (mnist_exp/checkpoints.py).
    """
    path = Path(ckpt_path)
    checkpoint = read_checkpoint(path)
    hparams = checkpoint["hyper_parameters"]
    net_config = hparams["net_config"]
    check_targets(net_config, path)
    try:
        net = instantiate(net_config)
    except Exception as error:
        raise CheckpointError(f"ckpt_path={path}: its model config does not build ({str(error).splitlines()[0]})") from None
    kwargs = {k: v for k, v in hparams.items() if k in ("num_classes", "tta_shifts", "channels_last", "net_config", "input_shape", "normalization")}
    module = DigitClassifier(net, optimizer=None, **kwargs)
    try:
        module.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as error:
        first = str(error).strip().splitlines()[0]
        raise CheckpointError(f"ckpt_path={path}: weights do not fit the model config inside it ({first})") from None
    return module.to(map_location).eval()


class RawImageClassifier(nn.Module):
    """What export writes: the checkpoint's own input transform, the network and a softmax, for raw
    pixel values 0..255."""

    def __init__(self, net: nn.Module, transform: nn.Module):
        super().__init__()
        self.net, self.transform = net, transform

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(self.transform(images)).softmax(dim=1)
