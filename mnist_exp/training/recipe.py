"""The recipe of a training run: `train(cfg)` fits, tests the chosen checkpoint on the official test set and
publishes the results; `run_training(cfg)` runs it in the run's dir, holding its lock, with its record. The
train command (mnist_exp/train.py) and mnist-exp-reproduce both run it."""

from __future__ import annotations

import logging
import signal
import time
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from mnist_exp.config import is_multirun, keys_given
from mnist_exp.errors import ConfigError, one_line
from mnist_exp.hardware import describe
from mnist_exp.records.checkpoints import Checkpoint
from mnist_exp.records.hparams import log_experiment
from mnist_exp.records.record import RunRecord
from mnist_exp.records.rundirs import hold_run_lock, is_ddp_helper_process, write_json_atomically
from mnist_exp.records.tracking import log_tested_model, log_to_mlflow
from mnist_exp.training.build import Run, run_to_fit, take_over

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


def refuse_ddp_subprocesses_in_a_sweep(trainer) -> None:
    """Lightning starts DDP's extra processes by re-running this command line: inside a -m sweep each
    would start a sweep of its own."""
    from mnist_exp.compat.lightning import restarts_command_line  # (imports Lightning: `--help` does not)

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
    return one_line(error)


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
    run, checkpoint = prepare_run(cfg)
    run.datamodule.prepare_data()  # fetch and verify before training starts
    start_record(run, cfg, record)
    fit(run, checkpoint)
    metrics = final_test(run, cfg)
    metrics.update(facts(run, checkpoint))
    metrics["wall_seconds"] = round(time.perf_counter() - started, 2)
    if run.trainer.is_global_zero:  # under DDP, rank 0 alone writes the results
        publish_results(run, cfg, metrics)
    return metrics


def prepare_run(cfg: DictConfig) -> tuple[Run, Checkpoint | None]:
    """The run to fit and the checkpoint it resumes: a single run's, as its pre-run check built it (seeded,
    for this dir: built once); a sweep job's, built now, which checks the values its classes refuse (the
    train command checked its other values). Then the threads."""
    import torch

    prepared = take_over(cfg) or run_to_fit(cfg, given=keys_given(cfg))
    logging.getLogger("mnist_exp.file").info("Seed set to %d (before the network drew its weights)", cfg.seed)
    if cfg.get("torch_threads"):  # else callbacks.ShareTheCPU chooses them while fitting and testing
        torch.set_num_threads(cfg.torch_threads)
    return prepared


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
    from mnist_exp.training.calibration import calibrate  # (imports torch: `--help` does not)

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
