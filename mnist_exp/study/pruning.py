"""Pruning across processes: a sweep job reports its validation accuracy after every epoch to its Optuna
trial and stops when the study's pruner says so.

The job finds its trial through what Hydra gives every job: the sweeper's config (study name, storage,
pruner), the sweep dir (where a study given no storage is kept) and the job's number, which the study
sweeper makes the trial's number. So it works in the sweep's process (basic launcher) and in another
process or on another node (joblib, submitit, SLURM) alike. Outside an Optuna sweep it does nothing.
"""

from __future__ import annotations

import logging

import pytorch_lightning as pl
from hydra.core.hydra_config import HydraConfig

from mnist_exp.config import is_multirun
from mnist_exp.study import STUDY_SWEEPER

log = logging.getLogger(__name__)

METRIC = "val/acc"  # what is reported each epoch: the objective's running value (val/acc_best is its max)


def this_jobs_trial():
    """The Optuna trial this job runs, or None outside an Optuna sweep or when it is not to be pruned."""
    if not is_multirun():
        return None
    hydra = HydraConfig.get()
    if hydra.runtime.choices.get("hydra/sweeper") != STUDY_SWEEPER:
        return None
    # Imported here: optuna and SQLAlchemy cost about a second, which a run outside a study does not pay.
    import optuna
    from hydra.utils import instantiate

    from mnist_exp.study.storage import load_study, location, open_storage, trial_id

    sweeper = hydra.sweeper
    pruner = instantiate(sweeper.pruner)
    if isinstance(pruner, optuna.pruners.NopPruner):  # hydra/sweeper/pruner=none: nothing to report
        return None
    url = location(sweeper.storage, hydra.sweep.dir)
    study = load_study(url, sweeper.study_name, pruner=pruner)
    number = hydra.job.num
    trial = optuna.trial.Trial(study, trial_id(open_storage(url), study.study_name, number))
    log.info(
        "Trial %d of study %r: %s goes to %s each epoch", number, study.study_name, METRIC, type(study.pruner).__name__
    )
    return trial


class PruneByTrial(pl.Callback):
    """After each validation, report val/acc to this job's trial; stop training when its pruner says so
    (`pruned_at`: the epoch, 1-based; `results()` then says `pruned`, and train.py tests nothing). A trial
    that has reached its last epoch is not pruned: stopping saves nothing, and it completes with its value."""

    def __init__(self) -> None:
        self.trial = None
        self.pruned_at: int | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit" and self.trial is None and trainer.is_global_zero:
            self.trial = this_jobs_trial()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # (not on_validation_epoch_end: Lightning calls it on callbacks before the module logs val/acc)
        if trainer.sanity_checking:
            return
        epoch, prune = trainer.current_epoch + 1, False
        last = trainer.max_epochs is not None and epoch >= trainer.max_epochs  # done anyway: let it complete
        if self.trial is not None and METRIC in trainer.callback_metrics:
            self.trial.report(float(trainer.callback_metrics[METRIC]), step=epoch)
            prune = not last and self.trial.should_prune()
        if trainer.strategy.reduce_boolean_decision(prune, all=False):  # rank 0 decides for every process
            self.pruned_at = epoch
            trainer.should_stop = True
            log.info("Pruned after epoch %d: %s is not promising against the study's other trials", epoch, METRIC)

    def results(self) -> dict:
        """A trial its pruner stopped: its status (train() then skips the test) and the epoch."""
        return {"status": "pruned", "pruned_at_epoch": self.pruned_at} if self.pruned_at else {}
