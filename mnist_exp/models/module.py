"""LightningModule that trains any image classifier `nn.Module` with one shared step."""

from __future__ import annotations

import random
from functools import partial

import numpy as np
import pytorch_lightning as pl
import torch
from torch import nn
from torchmetrics import MaxMetric, MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from mnist_exp.data.transforms import BatchTransform
from mnist_exp.errors import CheckpointError, first_line, is_int, is_number, require
from mnist_exp.models.schedules import make_scheduler
from mnist_exp.models.shapes import MNIST_INPUT_SHAPE

STAGES = ("train", "val", "test")


def collect_rng_states() -> dict:
    """The random streams, as tensors and tuples that `torch.load(weights_only=True)` accepts."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    states = {
        "torch": torch.get_rng_state(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached),
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    kind, keys, position, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states["cuda"])


class DigitClassifier(pl.LightningModule):
    def __init__(
        self,
        net: nn.Module,
        optimizer: partial,
        scheduler: dict | None = None,
        num_classes: int = 10,
        label_smoothing: float = 0.0,
        tta_shifts: int = 0,
        channels_last: bool = False,
        compile: bool = False,
        net_config: dict | None = None,
        input_shape: list[int] | None = None,
        transforms: BatchTransform | None = None,
        normalization: dict | None = None,
    ):
        """`optimizer` takes the parameters; `scheduler` is Lightning's lr_scheduler dict whose
        "scheduler" entry takes the optimizer (schedulers with a `total_steps` argument get the run's
        number of optimizer steps unless the config sets it).

        label_smoothing: for the training loss only (validation and test report plain cross-entropy).
        tta_shifts: test-time augmentation: the test step averages the probabilities of the image and
            of copies shifted by 1..tta_shifts pixels up, down, left and right (no flips: digits are
            not mirror-symmetric).
        channels_last, compile: speed switches: NHWC memory layout (faster for this CNN on CPUs and
            GPUs), torch.compile (pays off on GPUs for long runs).
        transforms: the input transform (normalization, and augmentation for training batches); its
            mean/std are saved in the checkpoint as `normalization`, from which a module loaded
            from a checkpoint rebuilds it.
        net_config, input_shape: the model's Hydra config and the [channels, height, width] of its
            images (from the data config), saved in the checkpoint, so that evaluate, predict and
            export can rebuild everything from it alone.
        """
        super().__init__()
        require(
            is_number(label_smoothing) and 0.0 <= label_smoothing < 1.0,
            "module.label_smoothing",
            "a number in [0, 1)",
            label_smoothing,
        )
        require(is_int(tta_shifts) and tta_shifts >= 0, "module.tta_shifts", "an integer >= 0", tta_shifts)
        self.transform = transforms or BatchTransform(**(normalization or {"mean": 0.5, "std": 0.5}))
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler", "transforms"], logger=False)
        self.hparams["normalization"] = {"mean": self.transform.mean, "std": self.transform.std}
        self.hparams["input_shape"] = list(input_shape or MNIST_INPUT_SHAPE)
        self.net = net.to(memory_format=torch.channels_last) if channels_last else net
        self.optimizer_factory, self.scheduler_config = optimizer, scheduler or None
        self.train_criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        self.criterion = nn.CrossEntropyLoss()
        self.tta_shifts, self.channels_last, self.compile_net = tta_shifts, channels_last, compile
        for stage in STAGES:
            setattr(self, f"{stage}_acc", MulticlassAccuracy(num_classes, average="micro", validate_args=False))
            setattr(self, f"{stage}_loss", MeanMetric())
        self.val_acc_best = MaxMetric()
        self.provenance: dict | None = None  # set by training (mnist_exp/records/record.py), saved in checkpoints
        # Temperature scaling (mnist_exp/training/calibration.py; calibrate=true fits it): predict_proba and export
        # divide the logits by it. Saved in checkpoints as `calibration`.
        self.temperature = 1.0
        # Metric states go into checkpoints, so a resumed run continues a half-done epoch's
        # accuracy and the best validation accuracy so far instead of starting them afresh.
        for metric in (self.train_acc, self.train_loss, self.val_acc_best):
            metric.persistent(True)  # (torchmetrics loads checkpoints without these states too)

    def setup(self, stage: str) -> None:
        if self.compile_net and stage == "fit":
            self.net.compile()  # in place: checkpoint keys stay those of the plain model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return self.net(images)

    def forward_tta(self, images: torch.Tensor) -> torch.Tensor:
        """Log of the mean class probabilities over the image and its shifted copies."""
        views = [images]
        for step in range(1, self.tta_shifts + 1):
            for shift, dim in ((step, 2), (-step, 2), (step, 3), (-step, 3)):
                views.append(torch.roll(images, shifts=shift, dims=dim))  # borders are background
        probabilities = torch.stack([self(v).softmax(dim=1) for v in views]).mean(dim=0)
        return probabilities.clamp_min(1e-12).log()

    @torch.no_grad()
    def predict_proba(self, images: torch.Tensor) -> torch.Tensor:
        """Class probabilities for uint8 MNIST-style images [N, 28, 28], preprocessed as in training and
        divided by the fitted temperature (1 when none was fitted: then the log-probabilities' softmax is
        the probabilities themselves)."""
        return (self.forward_tta(self.transform(images.to(self.device))) / self.temperature).softmax(dim=1)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        """uint8 batches become normalized floats on the device (augmented when training)."""
        images, labels = batch
        return self.transform(images, augment=self.trainer is not None and self.trainer.training), labels

    def shared_step(self, batch, stage: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss and logits for one batch; accumulates the stage's epoch accuracy and mean loss."""
        images, labels = batch
        logits = self.forward_tta(images) if stage == "test" and self.tta_shifts else self(images)
        loss = (self.train_criterion if stage == "train" else self.criterion)(logits, labels)
        # update(), not forward(): per-batch values are not needed, and self.log() per step costs
        # about a millisecond, a tenth of a training step here; epochs are logged in one go below.
        getattr(self, f"{stage}_acc").update(logits, labels)
        getattr(self, f"{stage}_loss").update(loss.detach(), weight=len(labels))
        return loss, logits

    def log_epoch(self, stage: str) -> None:
        accuracy, mean_loss = getattr(self, f"{stage}_acc"), getattr(self, f"{stage}_loss")
        if not self.trainer.sanity_checking:
            epoch_accuracy = accuracy.compute()  # reduces across ranks (once: each compute() does)
            self.log(f"{stage}/acc", epoch_accuracy, prog_bar=True)
            self.log(f"{stage}/loss", mean_loss.compute(), prog_bar=stage != "test")
            if stage == "val":
                self.val_acc_best(epoch_accuracy)
                self.log("val/acc_best", self.val_acc_best.compute(), prog_bar=True)
        accuracy.reset()
        mean_loss.reset()

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        loss, _ = self.shared_step(batch, "train")
        # Lightning writes step metrics when (optimizer steps so far + 1) % log_every_n_steps == 0.
        if (self.global_step + 1) % max(self.trainer.log_every_n_steps, 1) == 0:
            self.log("train/loss_step", loss.detach(), on_step=True, on_epoch=False, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        self.shared_step(batch, "val")

    def test_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self.shared_step(batch, "test")[1].detach()  # logits, for the test report callback

    def on_train_epoch_end(self) -> None:
        self.log_epoch("train")

    def on_validation_epoch_end(self) -> None:
        self.log_epoch("val")

    def on_test_epoch_end(self) -> None:
        self.log_epoch("test")

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["rng_states"] = collect_rng_states()
        if self.provenance:  # where the run came from (mnist_exp/records/record.py): plain data
            checkpoint["provenance"] = self.provenance
        checkpoint["calibration"] = {"temperature": self.temperature}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.temperature = float(checkpoint.get("calibration", {}).get("temperature", 1.0))
        # Resuming a fit: continue the random streams (dropout, augmentation) where they were.
        if self._trainer is not None and self.trainer.state.fn == "fit" and "rng_states" in checkpoint:
            set_rng_states(checkpoint["rng_states"])

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(params=self.parameters())
        if not self.scheduler_config:
            return optimizer
        steps = self.trainer.estimated_stepping_batches
        return {"optimizer": optimizer, "lr_scheduler": make_scheduler(self.scheduler_config, optimizer, steps)}

    @classmethod
    def from_checkpoint(cls, checkpoint) -> DigitClassifier:
        """The trained classifier from a checkpoint (a checkpoints.Checkpoint, read and checked once): its
        network from the model config saved inside, every other argument from its saved hyperparameters."""
        from hydra.utils import instantiate

        hparams = dict(checkpoint.hparams)
        try:
            net = instantiate(hparams["net_config"])
        except Exception as error:  # noqa: BLE001  (any failure: the file's model config does not build)
            reason = first_line(error)
            raise CheckpointError(f"ckpt_path={checkpoint.path}: its model config does not build ({reason})") from None
        try:
            module = cls(net, optimizer=None, **hparams)
        except TypeError as error:  # saved by another version of this class
            raise CheckpointError(
                f"ckpt_path={checkpoint.path}: its saved hyperparameters do not fit {cls.__name__} ({error})"
            ) from None
        # A training-only augmentation may keep state of its own (kornia's RandomContrast: a buffer); the
        # module rebuilt here has none, as evaluate, predict and export never augment.
        weights = {k: v for k, v in checkpoint.contents["state_dict"].items() if not k.startswith("transform.augment.")}
        try:
            module.load_state_dict(weights)
        except RuntimeError as error:
            raise CheckpointError(
                f"ckpt_path={checkpoint.path}: weights do not fit the model config inside it ({first_line(error)})"
            ) from None
        module.temperature = float(checkpoint.contents.get("calibration", {}).get("temperature", 1.0))
        return module.eval()
