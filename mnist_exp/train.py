"""Train, validate and test a model as the Hydra config says: `python -m mnist_exp [overrides]`."""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from mnist_exp.config import command, is_multirun
from mnist_exp.errors import ConfigError
from mnist_exp.hardware import describe
from mnist_exp.lifecycle.checks import check_config
from mnist_exp.lifecycle.resume import job_as_it_stands
from mnist_exp.records.checkpoints import Checkpoint, resolve
from mnist_exp.records.hparams import log_experiment
from mnist_exp.records.record import RunRecord
from mnist_exp.records.rundirs import hold_run_lock, is_ddp_helper_process, record_failure, write_json_atomically
from mnist_exp.records.tracking import log_tested_model, log_to_mlflow
from mnist_exp.training.build import Run, build_run

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
    if "fit_seconds" in metrics:  # (callbacks.TrainThroughput's)
        table.add_row("fit time", f"{metrics['fit_seconds']:.1f} s")
    paths = [f"Run dir: {run_dir}", f"Checkpoint: {metrics['checkpoint']}"]
    paths.append(f"Browse this run: tensorboard --logdir {run_dir}")
    paths += [f"MLflow model: {uri}" for uri in metrics.get("mlflow_models", [])]
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

    if is_multirun() and restarts_command_line(trainer) and trainer.world_size > 1:
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
    """The recipe: fit, test the chosen checkpoint on the official test set, write metrics.json; return the
    metrics. `record`: the run's record (run.json), started once the hardware and precision are known."""
    started = time.perf_counter() if started is None else started
    checkpoint = prepare_process(cfg)
    run = build_run(cfg, logger_options=continued_history(checkpoint))
    run.datamodule.prepare_data()  # fetch and verify before training starts
    start_record(run, cfg, record)
    fit(run, checkpoint)
    metrics = final_test(run, cfg)
    metrics.update(facts(run, checkpoint))
    metrics["wall_seconds"] = round(time.perf_counter() - started, 2)
    if run.trainer.is_global_zero:  # under DDP, rank 0 alone writes the results
        publish_results(run, cfg, metrics)
    return metrics


def prepare_process(cfg: DictConfig) -> Checkpoint | None:
    """Check a sweep job's own values (ConfigCheck checked the sweep's base config), find the checkpoint
    to resume, seed everything, set the threads. A single run's ckpt_path was resolved and pinned before
    its dir was made (resume.UseCheckpoint): the file is not read again."""
    import pytorch_lightning as pl
    import torch

    if is_multirun():
        check_config(cfg)
    checkpoint = resolve(cfg.ckpt_path, cfg.paths.log_dir) if cfg.get("ckpt_path") else None
    pl.seed_everything(cfg.seed, workers=True)
    if cfg.get("torch_threads"):  # else callbacks.ShareTheCPU chooses them while fitting and testing
        torch.set_num_threads(cfg.torch_threads)
    return checkpoint


def start_record(run: Run, cfg: DictConfig, record: RunRecord | None) -> None:
    """Say the precision, start the run's record (the checkpoints carry its provenance, MLflow its tags)."""
    log.info("Precision %s (%s)", run.precision, run.precision_reason)
    if record is not None:
        run.module.provenance = record.start(describe(run.trainer.strategy.root_device.type), str(run.precision))
        log_to_mlflow(run.trainer, cfg, run.module.provenance, str(run.precision))
    refuse_ddp_subprocesses_in_a_sweep(run.trainer)


def fit(run: Run, checkpoint: Checkpoint | None) -> None:
    """Trainer.fit, from the checkpoint when resuming; a stop by SIGTERM or Ctrl+C (CheckpointOnInterrupt
    said what it saved) exits with 128 + the signal's number."""
    from pytorch_lightning.utilities.exceptions import SIGTERMException

    path = str(checkpoint.path) if checkpoint else None
    try:
        run.trainer.fit(run.module, datamodule=run.datamodule, ckpt_path=path, weights_only=True)
    except SIGTERMException:
        stopped_by = callback_results(run.callbacks).get("stopped_by", "SIGTERM")
        raise SystemExit(128 + signal.Signals[stopped_by]) from None


def callback_results(callbacks: list) -> dict:
    """What the run's callbacks report (those with a `results()` method: mnist_exp/training/callbacks.py)."""
    results: dict = {}
    for callback in callbacks:
        if hasattr(callback, "results"):
            results.update(callback.results())
    return results


def final_test(run: Run, cfg: DictConfig) -> dict:
    """Test the checkpoint `test_checkpoint` names (the best by validation accuracy, or the weights as
    trained), temperature-scaled first with calibrate=true; a trial its pruner stopped is not worth one."""
    from mnist_exp.training.calibration import calibrate

    metrics = {"status": "ok", **callback_results(run.callbacks)}
    best = run.trainer.checkpoint_callback.best_model_path if run.trainer.checkpoint_callback else ""
    tested = best if cfg.get("test_checkpoint", "best") == "best" else ""  # "": the weights as trained
    metrics.update({"checkpoint": best, "tested": "" if metrics["status"] == "pruned" else tested or "last"})
    if metrics["status"] == "pruned":
        return metrics
    if cfg.get("calibrate"):  # temperature scaling, fitted for the weights about to be tested
        last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
        chosen = tested or (str(last) if last.is_file() else None)
        metrics["calibration"] = calibrate(run.module, run.datamodule, chosen)
        log.info("Temperature scaling: %s", metrics["calibration"])
    scores = run.trainer.test(
        run.module, datamodule=run.datamodule, ckpt_path=tested or None, verbose=False, weights_only=True
    )[0]
    metrics.update({name: float(scores[name]) for name in ("test/acc", "test/loss", "test/ece")})
    return metrics


def facts(run: Run, checkpoint: Checkpoint | None) -> dict:
    """What the run was: its best validation accuracy, epochs, precision, hardware, and what it resumed."""
    known = {
        "val/acc_best": best_validation_accuracy(run.module),
        "epochs": int(run.trainer.current_epoch),
        "precision": str(run.precision),
        "hardware": describe(run.trainer.strategy.root_device.type),
    }
    if checkpoint:
        known["resumed_from"] = str(checkpoint.path)
    return known


def publish_results(run: Run, cfg: DictConfig, metrics: dict) -> None:
    """The tested model to MLflow (a LoggedModel), metrics.json, TensorBoard's HParams entry and chart layout,
    the summary on the console and in train.log."""
    run_dir = Path(cfg.paths.output_dir)
    models = log_tested_model(run.trainer, run.module, metrics)
    if models:
        metrics["mlflow_models"] = [f"models:/{model_id}" for model_id in models]
    write_json_atomically(run_dir / "metrics.json", metrics)
    log_experiment(run.trainer, cfg, metrics, str(run.precision))
    print_summary(metrics, run_dir)


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
def main(cfg: DictConfig) -> dict:
    """Returns the run's metrics, whose `hydra.sweeper.objectives` an Optuna search optimizes (a trial
    its pruner stopped has status `pruned`, a sweep job that failed `failed`). Errors are raised: the front
    door (mnist_exp/cli.py) says the expected ones in one line."""
    started = time.perf_counter()
    if is_multirun() and (kept := job_as_it_stands(cfg)) is not None:  # a continued sweep's finished job
        return kept
    try:
        metrics = run_training(cfg, started)
    except Exception as error:
        if not is_multirun():
            raise
        # One failed job must not end the sweep: record it (the sweep summary lists it and the sweep
        # exits non-zero) and return it as a result, `failed` with its error, which a sweeper may
        # tell its study (study/sweeper.py); Hydra's basic sweeper would stop at a job that raises.
        message = record_failure(Path(cfg.paths.output_dir), error, time.perf_counter() - started)
        log.error("job failed: %s", message)
        return {"status": "failed", "error": error}
    return metrics
