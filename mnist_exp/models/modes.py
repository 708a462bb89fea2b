"""A module in eval mode for a block (dropout off, batch norm on its running statistics), then back in the
mode it was in: for what looks at a model between training steps (calibration, feature maps, attributions)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn


@contextmanager
def evaluating(module: nn.Module) -> Iterator[nn.Module]:
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)
