"""Callbacks that tests add to real runs (`+callbacks.NAME._target_=tests.callbacks.CLASS`)."""

import json
import os
import signal
import time
from pathlib import Path

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


class SignalGroupInJob(SignalAtStep):
    """In sweep job `job` alone, signal this process's whole group after step `step`, as `kill -SIG -PGID` would
    (a run resumed from a checkpoint stays quiet: the continued sweep runs the same command)."""

    def __init__(self, job: int, step: int, signal_name: str = "SIGTERM", when: str = "train_batch"):
        super().__init__(step, signal_name, when)
        self.job = job

    def _maybe_send(self, trainer, when: str) -> None:
        from hydra.core.hydra_config import HydraConfig

        resumed = trainer.ckpt_path is not None
        if HydraConfig.get().job.num != self.job or resumed or trainer.sanity_checking:
            return
        if trainer.global_step == self.step and self.when == when:
            os.killpg(os.getpgrp(), self.signum)


class PoisonWeightsAtStep(pl.Callback):
    """Fill the first layer's weights with NaN before optimizer step `step`: the next loss is NaN."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if trainer.global_step == self.step:
            with torch.no_grad():
                next(pl_module.net.parameters()).fill_(float("nan"))


class HoldAtEpoch(pl.Callback):
    """Sweep job `job` waits at the start of epoch `epoch` until the file `until` exists (at most
    `timeout` s): a test gates a race (a trial still running while it looks) on an explicit event."""

    def __init__(self, epoch: int, until: str, job: int = 0, timeout: float = 300):
        self.epoch, self.until, self.job, self.timeout = epoch, Path(until), job, timeout

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        from hydra.core.hydra_config import HydraConfig

        if trainer.current_epoch != self.epoch or HydraConfig.get().job.num != self.job:
            return
        deadline = time.monotonic() + self.timeout
        while not self.until.exists() and time.monotonic() < deadline:
            time.sleep(0.1)


class RecordBuilds(pl.Callback):
    """Write to built.json, when fit starts: how many of this callback were made in this process (one per run
    built), and what the seed decided (the first layer's initial weights, the RNG's state for the shuffles)."""

    made = 0

    def __init__(self) -> None:
        RecordBuilds.made += 1

    def on_fit_start(self, trainer, pl_module) -> None:
        first = next(p for p in pl_module.parameters() if p.dim() == 4)
        record = {"made": RecordBuilds.made, "weights": first.detach().double().sum().item()}
        record["rng"] = torch.get_rng_state().double().sum().item()
        (Path(trainer.default_root_dir) / "built.json").write_text(json.dumps(record))
