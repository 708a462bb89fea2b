"""Train, validate and test a model as the Hydra config says: `python -m mnist_exp [overrides]` (the recipe
is mnist_exp/training/recipe.py)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from omegaconf import DictConfig

from mnist_exp.config import command, is_multirun
from mnist_exp.lifecycle.checks import check_config
from mnist_exp.lifecycle.resume import job_as_it_stands
from mnist_exp.records.rundirs import record_failure
from mnist_exp.training.recipe import run_training

log = logging.getLogger(__name__)


@command("train")
def main(cfg: DictConfig) -> dict:
    """Returns the run's metrics, whose `hydra.sweeper.objectives` an Optuna search optimizes (a trial
    its pruner stopped has status `pruned`, a sweep job that failed `failed`). Errors are raised: the front
    door (mnist_exp/cli.py) says the expected ones in one line."""
    started = time.perf_counter()
    if is_multirun() and (kept := job_as_it_stands(cfg)) is not None:  # a continued sweep's finished job
        return kept
    try:
        if is_multirun():  # a sweep job's own values (ConfigCheck checked the sweep's base config)
            check_config(cfg, build=False)  # (what its classes refuse, building the run says)
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
