"""Callbacks that Lightning does not ship.

A callback with a `results()` method reports what it found to the run (train.py puts it in metrics.json):
train() asks every callback, never looks for one by its class."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import statistics
import sys
import threading
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.utilities.exceptions import SIGTERMException

from mnist_exp.errors import NonFiniteLossError, is_int, require
from mnist_exp.records.rundirs import counted_as_training, processes_training

log = logging.getLogger(__name__)
# Trainer.save_checkpoint's `weights_only` (what it writes, not how anything is read): a resumable checkpoint
# holds the optimizer, loop and RNG state too. Checkpoints are always read with torch's safe unpickler.
SAVE_WEIGHTS_ONLY = False


class LogSampleInputs(pl.Callback):
    """Log a grid of the first training batch, exactly as the model sees it, to TensorBoard."""

    def __init__(self, count: int = 64):
        self.count = count

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if trainer.current_epoch != 0 or batch_idx != 0:
            return
        from torchvision.utils import make_grid

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
    one clock reading at each end of an epoch is all a training-speed figure needs. It also notes
    when the first training step began (Unix time), so start-up can be measured from outside.
    """

    def __init__(self):
        self.epoch_rates: list[float] = []
        self.first_step_at: float | None = None
        self.earlier_segments: list[float] = []  # fit seconds of the runs this one resumes, from the checkpoint
        self._fit_started: float | None = None
        self._fit_ended: float | None = None
        self.fit_ended_at: float | None = None
        self._started: float | None = None  # this epoch's clock; None until its first batch here
        self._last_batch_end = 0.0
        self._images = 0

    def on_fit_start(self, trainer, pl_module) -> None:
        self._fit_started, self._fit_ended = time.perf_counter(), None

    def on_fit_end(self, trainer, pl_module) -> None:
        self._fit_ended, self.fit_ended_at = time.perf_counter(), time.time()

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._images, self._started = 0, time.perf_counter()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if self.first_step_at is None:
            self.first_step_at = time.time()
        if self._started is None:  # resumed mid-epoch: Lightning does not start that epoch again, its clock starts here
            self._images, self._started = 0, time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self._images += len(batch[1])
        self._last_batch_end = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        seconds = self._last_batch_end - (self._started or self._last_batch_end)
        if self._images and seconds > 0:
            self.epoch_rates.append(self._images / seconds)
            pl_module.log("train/images_per_second", self.epoch_rates[-1], on_epoch=True)
        self._started = None

    def segments(self) -> list[float]:
        """Fit seconds of each run segment so far: the runs this one resumes, then this one."""
        ended = self._fit_ended or time.perf_counter()
        now = [ended - self._fit_started] if self._fit_started is not None else []
        return [*self.earlier_segments, *now]

    def results(self) -> dict:
        """For metrics.json: fit time (summed over the segments of a resumed run), the median epoch's
        images/s, and when the first step began and fit ended (Unix times: start-up and the time after
        fit, seen from outside)."""
        segments = self.segments()
        results = {"fit_seconds": round(sum(segments), 2)}
        if len(segments) > 1:
            results["fit_segments"] = [round(seconds, 2) for seconds in segments]
        if self.epoch_rates:
            results["train_images_per_second"] = round(statistics.median(self.epoch_rates), 1)
        if self.first_step_at:
            results["first_train_step_at"] = round(self.first_step_at, 3)
        if self.fit_ended_at:
            results["fit_ended_at"] = round(self.fit_ended_at, 3)
        return results

    def state_dict(self) -> dict:  # saved in every checkpoint: a resumed run adds its time to these
        return {"fit_segments": self.segments(), "epoch_rates": list(self.epoch_rates)}

    def load_state_dict(self, state_dict: dict) -> None:
        self.earlier_segments = list(state_dict.get("fit_segments", []))
        self.epoch_rates = list(state_dict.get("epoch_rates", []))


class EpochLog(pl.Callback):
    """One line per epoch, once its validation is done, to the console and train.log:

        epoch 3/5  train loss 0.0812 acc 97.52%  val loss 0.0401 acc 98.90% (new best)  12.4 s, 4,312 images/s

    what the tutorial prints, and a sign of life in a redirected log (where the progress bar prints
    nothing). Lightning logs the epoch's training metrics after its validation, so each line is
    written when the next epoch starts, or when fitting ends. On a terminal the line is printed
    above the rich progress bar (through its console, so the bar stays intact) and goes to
    train.log alone through the `mnist_exp.epochs.file` logger (mnist_exp/conf/hydra/default.yaml).
    """

    def __init__(self):
        self._started: float | None = None
        self._finished: tuple[int, float] | None = None  # (epoch, seconds) not yet written
        self._best: float | None = None

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._write(trainer)
        self._started = time.perf_counter()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if self._started is None:  # resumed mid-epoch: the epoch's time here starts with its first batch here
            self._started = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._finished = (trainer.current_epoch, time.perf_counter() - (self._started or time.perf_counter()))
        self._started = None

    def on_fit_end(self, trainer, pl_module) -> None:
        self._write(trainer)

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self._write(trainer)  # the last finished epoch still gets its line

    def _write(self, trainer) -> None:
        if self._finished is None or not trainer.is_global_zero:
            return
        (epoch, seconds), self._finished = self._finished, None
        line = self.line(trainer, epoch, seconds)
        console = self._live_console(trainer)
        if console is not None:
            console.print(line, highlight=False, markup=False)
            logging.getLogger("mnist_exp.epochs.file").info(line)
        else:
            logging.getLogger("mnist_exp.epochs").info(line)

    def line(self, trainer, epoch: int, seconds: float) -> str:
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if getattr(v, "numel", lambda: 1)() == 1}
        total = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else "?"
        parts = [f"epoch {epoch + 1}/{total}"]
        # the training loss is the one minimized: with label smoothing, against smoothed targets (higher than
        # the plain cross-entropy that validation reports), and the line says so
        smoothing = (getattr(trainer.lightning_module, "hparams", None) or {}).get("label_smoothing") or 0
        for stage in ("train", "val"):
            if f"{stage}/loss" in metrics and f"{stage}/acc" in metrics:
                kind = f" (label-smoothed {smoothing:g})" if stage == "train" and smoothing else ""
                parts.append(f"{stage} loss{kind} {metrics[f'{stage}/loss']:.4f} acc {metrics[f'{stage}/acc']:.2%}")
        if "val/acc" in metrics:
            if self._best is None or metrics["val/acc"] > self._best:
                parts[-1] += " (new best)"
                self._best = metrics["val/acc"]
        timing = f"{seconds:.1f} s"
        if "train/images_per_second" in metrics:
            timing += f", {metrics['train/images_per_second']:,.0f} images/s"
        return "  ".join([*parts, timing])

    @staticmethod
    def _live_console(trainer):
        """The rich console of a progress bar drawing live on a terminal, else None."""
        bar = trainer.progress_bar_callback
        progress = getattr(bar, "progress", None)
        console = getattr(progress, "console", None)
        live = getattr(getattr(progress, "live", None), "is_started", False)
        return console if console is not None and console.is_terminal and live else None


class NetSummary(pl.Callback):
    """At the start of fit, the network the run trains: its parameter count, then one line per layer (its
    name, kind and parameters). Lightning's own summary lists the LightningModule's children, the
    metric objects among them, and says `Total FLOPs: 0` on the CPU (trainer.enable_model_summary: false)."""

    def on_fit_start(self, trainer, pl_module) -> None:
        if not trainer.is_global_zero:
            return
        net = pl_module.net
        log.info("model %s: %s parameters", type(net).__name__, f"{sum(p.numel() for p in net.parameters()):,}")
        for name, layer in net.named_modules():
            if name and not list(layer.children()):
                count = sum(p.numel() for p in layer.parameters())
                log.info("  %-14s %-12s %s", name, type(layer).__name__, f"{count:,}" if count else "")


class CheckpointOnInterrupt(pl.Callback):
    """SIGTERM (kill, a cluster's time limit) or Ctrl+C: finish the current training batch, save the
    exact state to checkpoints/last.ckpt and stop; `ckpt_path=last` then resumes mid-epoch.

    Lightning stops cleanly after the current batch on SIGTERM (SIGTERMException) but saves nothing, and
    its Ctrl+C handling stops wherever the code happens to be (say between backward and the optimizer
    step), a state no run can be resumed from exactly. Here the first Ctrl+C is turned into Lightning's
    SIGTERM stop; a second Ctrl+C stops at once, without a checkpoint. A stop at an epoch's end or during
    validation keeps the end-of-epoch last.ckpt, the state that validation started from.
    """

    def __init__(self, dirpath: str, filename: str = "last"):
        self.path = Path(dirpath) / f"{filename}.ckpt"
        self.signal_name = "SIGTERM"
        self.stopped_by: str | None = None
        self.active = False
        self._previous_sigint = None

    def on_fit_start(self, trainer, pl_module) -> None:
        self.signal_name, self.active = "SIGTERM", True
        if threading.current_thread() is threading.main_thread():
            self._previous_sigint = signal.signal(signal.SIGINT, self._on_sigint)

    def _on_sigint(self, signum, frame) -> None:
        if not self.active or self.signal_name == "SIGINT":  # not fitting, or pressed twice: stop now
            raise KeyboardInterrupt
        self.signal_name = "SIGINT"
        print(
            "\nCtrl+C: stopping after this batch and saving a checkpoint "
            "(press Ctrl+C again to stop at once, without one)",
            file=sys.stderr,
            flush=True,
        )
        signal.raise_signal(signal.SIGTERM)  # Lightning's handler: stop cleanly after the current batch

    def on_fit_end(self, trainer, pl_module) -> None:
        self.active = False
        if self._previous_sigint is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, self._previous_sigint)
            self._previous_sigint = None

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self.active = False
        if not isinstance(exception, SIGTERMException):
            return
        name = self.signal_name
        loader = trainer.train_dataloader
        done = getattr(loader, "batches_done", 0)
        if trainer.training and 0 < done < trainer.num_training_batches:
            temporary = self.path.with_suffix(".ckpt.tmp")
            # all ranks take part, rank 0 writes; what to save said here (the whole state: optimizer, loops, RNG), so
            # that Lightning does not log that it chose a default (a line that read as if loading were unsafe)
            trainer.save_checkpoint(temporary, weights_only=SAVE_WEIGHTS_ONLY)
            if trainer.is_global_zero:
                os.replace(temporary, self.path)  # a kill while saving never leaves half a last.ckpt
            message = (
                f"saved {self.path} (epoch {trainer.current_epoch + 1} of {trainer.max_epochs}, "
                f"batch {done} of {trainer.num_training_batches})"
            )
        elif self.path.exists():
            message = f"kept {self.path}, saved at the end of the last finished epoch"
        else:
            message = "no checkpoint was saved yet, nothing to resume from"
        if trainer.is_global_zero:
            log.info(f"Stopped by {name}: {message}. Resume with: python -m mnist_exp ckpt_path=last")
        self.stopped_by = name

    def results(self) -> dict:
        """The signal that stopped the run, when one did (train() exits with 128 + its number)."""
        return {"stopped_by": self.stopped_by} if self.stopped_by else {}


class ShareTheCPU(pl.Callback):
    """Runs on one machine share its cores: while fitting or testing, this process counts itself among the
    training processes (rundirs.counted_as_training) and uses cores / processes torch threads, counted again
    every `every` batches, so runs that start or end later are seen; it says so in one line when it
    shares. `threads` (the config's torch_threads): set, the run keeps that many (train() sets them) and
    neither counts nor is counted.

    Speed: two runs started together with torch's default (a thread per core each) trained at 391 images/s
    each against 14,343 alone on a 2-core CPU: their threads wait on each other's cores. With the cores
    split, each keeps about half the machine."""

    def __init__(self, threads: int | None = None, every: int = 10):
        require(
            threads is None or (is_int(threads) and threads >= 1), "torch_threads", "null or an integer >= 1", threads
        )
        self.threads, self.every = threads, every
        self.cores = os.cpu_count() or 1
        self.sharing_with = 0  # other processes when last counted
        self._counted = contextlib.ExitStack()  # this process's place among them while fitting or testing

    def setup(self, trainer, pl_module, stage: str) -> None:
        if self.threads:
            return
        self._counted.enter_context(counted_as_training())
        self.share()

    def teardown(self, trainer, pl_module, stage: str) -> None:
        self._counted.close()

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self._counted.close()  # (Lightning skips teardown when a stage ends in an exception)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if not self.threads and batch_idx % self.every == 0:
            self.share()

    def share(self) -> None:
        others = max(processes_training() - 1, 0)
        threads = max(1, self.cores // (others + 1))
        if others != self.sharing_with:
            if others:
                log.info(
                    "%d other mnist-exp run%s training on this machine: %d of %d CPU threads here (torch_threads=N "
                    "to choose)",
                    others,
                    "s" if others > 1 else "",
                    threads,
                    self.cores,
                )
            else:
                log.info("No other mnist-exp run training on this machine now: all %d CPU threads here", self.cores)
            self.sharing_with = others
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


class StopOnNonFiniteLoss(pl.Callback):
    """Stop training when the loss is NaN or infinite, before that step's backward pass, so no later
    checkpoint holds broken weights: last.ckpt stays the last good one.

    The loss is checked before every backward pass without waiting for the GPU; every
    `every_n_steps` steps (and before each validation, which precedes checkpointing) the result is read,
    a GPU synchronization. Under DDP the ranks agree, so all of them stop together.
    """

    def __init__(self, last_checkpoint: str | None = None, every_n_steps: int = 1):
        require(
            is_int(every_n_steps) and every_n_steps >= 1,
            "callbacks.nan_guard.every_n_steps",
            "an integer >= 1",
            every_n_steps,
        )
        self.last_checkpoint = Path(last_checkpoint) if last_checkpoint else None
        self.every_n_steps = every_n_steps
        self._bad = None

    def on_before_backward(self, trainer, pl_module, loss) -> None:
        bad = ~torch.isfinite(loss.detach())
        self._bad = bad if self._bad is None else self._bad | bad
        if (trainer.global_step + 1) % self.every_n_steps == 0:
            self._check(trainer, loss)

    def on_validation_start(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self._check(trainer, None)

    def _check(self, trainer, loss) -> None:
        bad, self._bad = self._bad, None
        if not trainer.strategy.reduce_boolean_decision(bool(bad is not None and bad.item()), all=False):
            return
        value = f"{loss.item()}" if loss is not None and not torch.isfinite(loss) else "NaN or infinite"
        last = self.last_checkpoint
        kept = f"last good checkpoint: {last}" if last and last.exists() else "no checkpoint was saved before it"
        raise NonFiniteLossError(
            f"training loss is {value} at epoch {trainer.current_epoch}, step {trainer.global_step}; training stopped "
            f"({kept}). Try a lower optimizer.lr or trainer.gradient_clip_val=1.0"
        )
