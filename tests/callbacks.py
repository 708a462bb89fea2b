"""Callbacks that tests add to real runs (`+callbacks.NAME._target_=tests.callbacks.CLASS`)."""

import os
import signal

import pytorch_lightning as pl
import torch


class SignalAtStep(pl.Callback):
    """Send this process a signal after optimizer step `step`, as `kill` or Ctrl+C would."""

    def __init__(self, step: int, signal_name: str = "SIGTERM"):
        self.step, self.signum = step, getattr(signal, signal_name)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), self.signum)


class PoisonWeightsAtStep(pl.Callback):
    """Fill the first layer's weights with NaN before optimizer step `step`: the next loss is NaN."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if trainer.global_step == self.step:
            with torch.no_grad():
                next(pl_module.net.parameters()).fill_(float("nan"))
