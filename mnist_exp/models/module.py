"""LightningModule that trains any image classifier `nn.Module` with one shared step."""

from __future__ import annotations

import inspect
from functools import partial

import pytorch_lightning as pl
import torch
from torch import nn
from torchmetrics import MaxMetric, MeanMetric
from torchmetrics.classification import MulticlassAccuracy

STAGES = ("train", "val", "test")


class DigitClassifier(pl.LightningModule):
    def __init__(
        self,
        net: nn.Module,
        optimizer: partial,
        scheduler: dict | None = None,
        num_classes: int = 10,
    ):
        """`optimizer` takes the parameters; `scheduler` is Lightning's lr_scheduler dict whose
        "scheduler" entry takes the optimizer (schedulers with a `total_steps` argument get the run's
        number of optimizer steps unless the config sets it)."""
        super().__init__()
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"], logger=False)
        self.net = net
        self.optimizer_factory, self.scheduler_config = optimizer, scheduler or None
        self.criterion = nn.CrossEntropyLoss()
        for stage in STAGES:
            setattr(self, f"{stage}_acc", MulticlassAccuracy(num_classes, average="micro"))
            setattr(self, f"{stage}_loss", MeanMetric())
        self.val_acc_best = MaxMetric()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)

    def shared_step(self, batch, stage: str) -> torch.Tensor:
        images, labels = batch
        logits = self(images)
        loss = self.criterion(logits, labels)
        accuracy, mean_loss = getattr(self, f"{stage}_acc"), getattr(self, f"{stage}_loss")
        accuracy(logits, labels)
        mean_loss(loss.detach(), weight=len(labels))
        self.log(f"{stage}/loss", mean_loss, on_step=False, on_epoch=True, prog_bar=stage != "test")
        self.log(f"{stage}/acc", accuracy, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        loss = self.shared_step(batch, "train")
        self.log("train/loss_step", loss.detach(), on_step=True, on_epoch=False)
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        self.shared_step(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self.shared_step(batch, "test")

    def on_train_start(self) -> None:
        self.val_acc_best.reset()  # forget the sanity-check batches

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        self.val_acc_best(self.val_acc.compute())
        self.log("val/acc_best", self.val_acc_best.compute(), prog_bar=True)

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(params=self.parameters())
        if not self.scheduler_config:
            return optimizer
        config = dict(self.scheduler_config)
        factory = config.pop("scheduler")
        extra = {}
        if "total_steps" in inspect.signature(factory.func).parameters and "total_steps" not in factory.keywords:
            extra["total_steps"] = int(self.trainer.estimated_stepping_batches)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": factory(optimizer, **extra), **config}}
