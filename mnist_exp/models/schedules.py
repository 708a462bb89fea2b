"""The learning-rate schedule, built the same way by the LightningModule (with the run's real number of
optimizer steps) and by the pre-run check (with the number the config plans); torch only."""

from __future__ import annotations

import inspect
from functools import partial

import torch

from mnist_exp.errors import ConfigError


def make_scheduler(config: dict, optimizer: torch.optim.Optimizer, total_steps: int) -> dict:
    """Lightning's lr_scheduler dict from the config's (`scheduler`: a partial taking the optimizer,
    plus Lightning's keys such as `interval`). A schedule with a `total_steps` argument gets the run's
    number of optimizer steps unless the config sets it."""
    config = dict(config)
    factory: partial = config.pop("scheduler")
    extra = {}
    if "total_steps" in inspect.signature(factory.func).parameters and "total_steps" not in factory.keywords:
        extra["total_steps"] = int(total_steps)
    try:
        scheduler = factory(optimizer, **extra)
    except ZeroDivisionError:  # OneCycleLR with fewer steps than its warm-up needs
        raise ConfigError(
            f"scheduler {factory.func.__name__} cannot be built for {extra.get('total_steps', 'the configured')} "
            "optimizer steps; train for more steps (trainer.max_epochs, data.batch_size) or use scheduler=none"
        ) from None
    return {"scheduler": scheduler, **config}
