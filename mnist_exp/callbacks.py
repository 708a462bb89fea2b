"""Callbacks that Lightning does not ship."""

from __future__ import annotations

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
