"""Callbacks that Lightning does not ship."""

from __future__ import annotations

import time

import pytorch_lightning as pl
from pytorch_lightning.loggers import TensorBoardLogger
from torchvision.utils import make_grid


class LogSampleInputs(pl.Callback):
    """Log a grid of the first training batch, exactly as the model sees it, to TensorBoard."""

    def __init__(self, count: int = 64):
        self.count = count

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if trainer.current_epoch != 0 or batch_idx != 0:
            return
        images, labels = batch
        images, labels = images[: self.count].detach().float().cpu(), labels[: self.count].tolist()
        grid = make_grid(images, nrow=8, normalize=True, pad_value=1.0)
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_image("samples/train_inputs", grid, global_step=0)
                logger.experiment.add_text("samples/train_labels", " ".join(map(str, labels)), global_step=0)


class TrainThroughput(pl.Callback):
    """Time each epoch's training batches (validation excluded) and log images per second.

    Lightning's ThroughputMonitor measures per step and needs the FLOPs and batch-size plumbing;
    one clock reading at each end of an epoch is all a training-speed figure needs.
    """

    def __init__(self):
        self.epoch_rates: list[float] = []
        self._started = self._last_batch_end = 0.0
        self._images = 0

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._images, self._started = 0, time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self._images += len(batch[1])
        self._last_batch_end = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        seconds = self._last_batch_end - self._started
        if self._images and seconds > 0:
            self.epoch_rates.append(self._images / seconds)
            pl_module.log("train/images_per_second", self.epoch_rates[-1], on_epoch=True)
