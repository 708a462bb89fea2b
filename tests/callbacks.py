"""Callbacks that tests add to real runs (`+callbacks.NAME._target_=tests.callbacks.CLASS`)."""

import os
import signal

import pytorch_lightning as pl
import torch


class SignalAtStep(pl.Callback):
    """Send this process a signal after optimizer step `step`, as `kill` or Ctrl+C would.

    when: `train_batch` (right after that step), `validation_batch` (after the first batch of the
    validation that follows it) or `validation_end` (after that validation and its checkpoints).
    """

    def __init__(self, step: int, signal_name: str = "SIGTERM", when: str = "train_batch"):
        self.step, self.signum, self.when = step, getattr(signal, signal_name), when

    def _maybe_send(self, trainer, when: str) -> None:
        resumed = trainer.ckpt_path is not None  # the resumed run keeps this callback (its saved config): quiet
        if trainer.global_step == self.step and self.when == when and not trainer.sanity_checking and not resumed:
            os.kill(os.getpid(), self.signum)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self._maybe_send(trainer, "train_batch")

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        if batch_idx == 0:
            self._maybe_send(trainer, "validation_batch")

    def on_validation_end(self, trainer, pl_module) -> None:
        self._maybe_send(trainer, "validation_end")  # runs after the checkpoint callbacks, listed first


class PoisonWeightsAtStep(pl.Callback):
    """Fill the first layer's weights with NaN before optimizer step `step`: the next loss is NaN."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if trainer.global_step == self.step:
            with torch.no_grad():
                next(pl_module.net.parameters()).fill_(float("nan"))
