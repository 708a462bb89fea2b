"""Train, validate and test a model as the Hydra config says: `python -m mnist_exp [overrides]`."""

from __future__ import annotations

import logging
import signal
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from mnist_exp.build import build_run
from mnist_exp.checkpoints import Checkpoint, resolve
from mnist_exp.checks import check_config
from mnist_exp.config import command
from mnist_exp.errors import ConfigError
from mnist_exp.hardware import describe
from mnist_exp.hparams import log_experiment
from mnist_exp.record import RunRecord
from mnist_exp.rundirs import hold_run_lock, is_ddp_helper_process, record_failure, write_json_atomically
from mnist_exp.tracking import log_to_mlflow

log = logging.getLogger(__name__)


def print_summary(metrics: dict, run_dir: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="mnist-exp run", show_header=False, title_justify="left")
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    if metrics["status"] == "pruned":
        table.add_row("status", f"pruned after epoch {metrics['pruned_at_epoch']} (not tested)")
    else:
        table.add_row("test accuracy", f"{metrics['test/acc']:.4f}")
        table.add_row("test loss", f"{metrics['test/loss']:.4f}")
    table.add_row("best val accuracy", f"{metrics['val/acc_best']:.4f}")
    table.add_row("epochs", str(metrics["epochs"]))
    table.add_row("fit time", f"{metrics['fit_seconds']:.1f} s")
    paths = [f"Run dir: {run_dir}", f"Checkpoint: {metrics['checkpoint']}"]
    paths.append(f"Browse this run: tensorboard --logdir {run_dir}")
    console = Console()
    console.print(table)
    for line in paths:  # whole, never wrapped inside a box: a path to copy
        console.print(line, soft_wrap=True, highlight=False, markup=False)
    results = logging.getLogger("mnist_exp.file")  # train.log: the run's results as the console shows them
    for label, value in zip(*(column.cells for column in table.columns), strict=True):
        results.info("%s: %s", label, value)
    for line in paths:
        results.info(line)


def continued_history(checkpoint: Checkpoint | None) -> Callable[[dict], dict]:
    """For a resumed run's TensorBoard logger: hide the events that the interrupted run logged after
    its checkpoint (SummaryWriter's purge_step), so every step shows once."""

    def options(logger_cfg: dict) -> dict:
        if checkpoint is None or not str(logger_cfg.get("_target_", "")).endswith("TensorBoardLogger"):
            return {}
        return {"purge_step": checkpoint.step}

    return options


def refuse_ddp_subprocesses_in_a_sweep(trainer) -> None:
    """Lightning starts DDP's extra processes by re-running this command line: inside a -m sweep each
    would start a sweep of its own."""
    from mnist_exp.compat.lightning import restarts_command_line

    multirun = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    if multirun and restarts_command_line(trainer) and trainer.world_size > 1:
        raise ConfigError(
            "trainer=ddp/ddp_cpu cannot start its processes inside a -m sweep; run each configuration on its own, "
            "or sweep with hydra/launcher=slurm (one task per device)"
        )


def outcome(error: BaseException) -> str:
    """A run's status in its record for the way it ended: a signal (SIGTERM, Ctrl+C) stops it, the rest fails it."""
    return "stopped" if isinstance(error, (SystemExit, KeyboardInterrupt)) else "failed"


def describe_error(error: BaseException) -> str:
    if isinstance(error, SystemExit):
        return f"stopped by a signal (exit status {error.code})"
    first_line = (str(error).strip().splitlines() or [""])[0]
    return f"{type(error).__name__}: {first_line}" if first_line else type(error).__name__


def best_validation_accuracy(module) -> float:
    """The best validation accuracy so far; a run resumed after its last epoch restores it from the
    checkpoint without validating again, which torchmetrics would warn about."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*was called before the ``update`` method.*")
        return float(module.val_acc_best.compute())


def train(cfg: DictConfig, started: float | None = None, record: RunRecord | None = None) -> dict:
    """Fit, test the best checkpoint on the official test set, write metrics.json; return the metrics.
    `record`: the run's record (run.json), started here once the hardware and precision are known."""
    import pytorch_lightning as pl
    import torch
    from pytorch_lightning.utilities.exceptions import SIGTERMException

    from mnist_exp.calibration import calibrate
    from mnist_exp.callbacks import CheckpointOnInterrupt, TrainThroughput
    from mnist_exp.study.pruning import PruneByTrial

    started = time.perf_counter() if started is None else started
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        check_config(cfg)  # a sweep job's own values (ConfigCheck checked the sweep's base config)
    # A single run's ckpt_path was resolved and pinned before its dir was made (resume.UseCheckpoint); the
    # file was read then and is not read again.
    checkpoint = resolve(cfg.ckpt_path, cfg.paths.log_dir) if cfg.get("ckpt_path") else None
    pl.seed_everything(cfg.seed, workers=True)
    if cfg.get("torch_threads"):  # else callbacks.ShareTheCPU chooses them while fitting and testing
        torch.set_num_threads(cfg.torch_threads)
    run_dir = Path(cfg.paths.output_dir)
    run = build_run(cfg, logger_options=continued_history(checkpoint))
    run.datamodule.prepare_data()  # fetch and verify before training starts
    trainer, module, datamodule = run.trainer, run.module, run.datamodule
    log.info("Precision %s (%s)", run.precision, run.precision_reason)
    if record is not None:  # the checkpoints carry the run's provenance too, and MLflow its tags
        module.provenance = record.start(describe(trainer.strategy.root_device.type), str(run.precision))
        log_to_mlflow(trainer, cfg, module.provenance, str(run.precision))
    refuse_ddp_subprocesses_in_a_sweep(trainer)

    fit_started = time.perf_counter()
    try:
        trainer.fit(
            module, datamodule=datamodule, ckpt_path=str(checkpoint.path) if checkpoint else None, weights_only=True
        )
    except SIGTERMException:  # a clean stop on SIGTERM or Ctrl+C (CheckpointOnInterrupt said what it saved)
        interrupt = next((c for c in run.callbacks if isinstance(c, CheckpointOnInterrupt)), None)
        raise SystemExit(
            128 + (signal.SIGINT if interrupt and interrupt.signal_name == "SIGINT" else signal.SIGTERM)
        ) from None
    fit_ended_at = time.time()
    throughput = next((c for c in run.callbacks if isinstance(c, TrainThroughput)), None)
    segments = [*(throughput.earlier_segments if throughput else []), time.perf_counter() - fit_started]
    fit_seconds = sum(segments)  # a resumed run: the stopped runs' fit time and its own
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    tested_ckpt = best if cfg.get("test_checkpoint", "best") == "best" else ""  # "": the weights as trained
    pruning = next((c for c in run.callbacks if isinstance(c, PruneByTrial)), None)
    metrics = {"status": "ok"}
    if pruning and pruning.pruned_at:  # a search's trial stopped by its pruner: not worth a test
        metrics = {"status": "pruned", "pruned_at_epoch": pruning.pruned_at}
    else:
        if cfg.get("calibrate"):  # temperature scaling, fitted for the weights about to be tested
            last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
            metrics["calibration"] = calibrate(
                module, datamodule, tested_ckpt or (str(last) if last.is_file() else None)
            )
            log.info("Temperature scaling: %s", metrics["calibration"])
        tested = trainer.test(
            module, datamodule=datamodule, ckpt_path=tested_ckpt or None, verbose=False, weights_only=True
        )[0]
        metrics.update({name: float(tested[name]) for name in ("test/acc", "test/loss", "test/ece")})
    metrics.update(
        {
            "val/acc_best": best_validation_accuracy(module),
            "epochs": int(trainer.current_epoch),
            "fit_seconds": round(fit_seconds, 2),
            "checkpoint": best,
            "tested": "" if metrics["status"] == "pruned" else tested_ckpt or "last",
            "precision": str(run.precision),
            "hardware": describe(trainer.strategy.root_device.type),
        }
    )
    if checkpoint:
        metrics["resumed_from"] = str(checkpoint.path)
    if len(segments) > 1:
        metrics["fit_segments"] = [round(seconds, 2) for seconds in segments]
    if throughput and throughput.epoch_rates:
        metrics["train_images_per_second"] = round(statistics.median(throughput.epoch_rates), 1)
    if throughput and throughput.first_step_at:
        metrics["first_train_step_at"] = round(throughput.first_step_at, 3)  # Unix time: start-up, seen from outside
    metrics["fit_ended_at"] = round(fit_ended_at, 3)  # Unix time: the time after fit, seen from outside
    metrics["wall_seconds"] = round(time.perf_counter() - started, 2)
    if not trainer.is_global_zero:  # under DDP, rank 0 alone writes the results
        return metrics
    write_json_atomically(run_dir / "metrics.json", metrics)
    log_experiment(trainer, cfg, metrics, str(run.precision))  # TensorBoard: HParams entry, chart layout
    print_summary(metrics, run_dir)
    return metrics


def run_training(cfg: DictConfig, started: float | None = None, **noted) -> dict:
    """train() in the run's dir, holding its lock, with its record (run.json) written at start and end;
    `noted` goes into the record as it is (reproduce: the run it repeats)."""
    with hold_run_lock(Path(cfg.paths.output_dir)):  # ckpt_path=last passes over a running run
        record = None if is_ddp_helper_process() else RunRecord(Path(cfg.paths.output_dir), cfg, HydraConfig.get())
        if record is not None:
            record.data.update(noted)
        try:
            metrics = train(cfg, started, record)
        except BaseException as error:
            if record is not None:
                record.end(outcome(error), error=describe_error(error))
            raise
        if record is not None:
            record.end(metrics["status"], metrics)
        return metrics


@command("train")
def main(cfg: DictConfig) -> dict | float:
    """Returns the run's metrics, whose `hydra.sweeper.objectives` an Optuna search optimizes (a trial its
    pruner stopped has status `pruned`). Errors are raised: the front door (mnist_exp/cli.py) says the
    expected ones in one line."""
    started = time.perf_counter()
    try:
        metrics = run_training(cfg, started)
    except Exception as error:
        if HydraConfig.get().mode != RunMode.MULTIRUN:
            raise
        # One failed job must not end the sweep: record it (the sweep summary lists it and the
        # sweep exits non-zero). Hydra's basic sweeper stops at a job that raises, so return NaN;
        # Optuna's sweeper records a raised error as a failed trial but fails on a NaN value.
        message = record_failure(Path(cfg.paths.output_dir), error, time.perf_counter() - started)
        log.error("job failed: %s", message)
        if "optuna" in str(HydraConfig.get().sweeper.get("_target_", "")):
            raise
        return float("nan")
    return metrics
