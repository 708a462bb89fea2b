"""Rebuild a trained classifier from its checkpoint alone (used by evaluate, predict and export)."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch
from hydra.utils import instantiate

from mnist_exp.models import DigitClassifier


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable, or does not match what was asked for."""


def load_classifier(
    ckpt_path: str | Path, expected_model: Mapping | None = None, map_location: str = "cpu"
) -> DigitClassifier:
    """The model, its weights and its input normalization, from a checkpoint written by training.

    expected_model: a model config (e.g. `model.channels=32` on the command line); every key it
    sets must equal the checkpoint's, or a CheckpointError names the keys that differ.
    """
    path = Path(ckpt_path)
    if not path.is_file():
        raise CheckpointError(f"ckpt_path={path}: no such file")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as error:  # torch raises many kinds for a damaged or foreign file
        raise CheckpointError(f"ckpt_path={path}: not a readable checkpoint ({error.__class__.__name__})") from None
    hparams = checkpoint.get("hyper_parameters", {}) if isinstance(checkpoint, dict) else {}
    net_config = hparams.get("net_config")
    if not net_config or "state_dict" not in checkpoint:
        raise CheckpointError(f"ckpt_path={path}: not an mnist-exp checkpoint (it has no model config inside)")
    if expected_model:
        differ = {k: (v, net_config.get(k)) for k, v in expected_model.items() if net_config.get(k) != v}
        if differ:
            detail = ", ".join(f"model.{k}={ckpt!r} in the checkpoint but {want!r} requested" for k, (want, ckpt) in differ.items())
            raise CheckpointError(f"ckpt_path={path} does not match the requested model: {detail}")
    net = instantiate(net_config)
    kwargs = {k: v for k, v in hparams.items() if k in ("num_classes", "tta_shifts", "channels_last", "net_config", "normalization")}
    module = DigitClassifier(net, optimizer=None, **kwargs)
    try:
        module.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as error:
        first = str(error).strip().splitlines()[0]
        raise CheckpointError(f"ckpt_path={path}: weights do not fit the model config inside it ({first})") from None
    return module.eval()
