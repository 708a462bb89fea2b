"""What goes into a run's console output and train.log, besides what Hydra's logging already does."""

from __future__ import annotations

import logging


class DropLightningTips(logging.Filter):
    """Lightning advertises its cloud services in every run ("💡 Tip: ... litlogger"): not in our logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip:")


class ForTheConsole(logging.Filter):
    """The console shows the project's own lines and anyone's warnings; other libraries' INFO lines
    (Lightning's seed, device and signal notices) go to train.log alone."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name.split(".")[0] in ("mnist_exp", "__main__") or record.levelno >= logging.WARNING


def through_the_runs_handlers() -> None:
    """Lightning gives its loggers a console handler of their own when it is imported before any logging is
    set up (as `python -m mnist_exp` imports it, before Hydra sets up the run's): taken off, so that its lines
    go through the run's handlers like everyone's (on the console only its warnings; train.log all of it)."""
    for name in ("pytorch_lightning", "lightning_fabric"):
        logger = logging.getLogger(name)
        if not logger.propagate:
            logger.handlers[:] = []
            logger.propagate = True


# Warnings that libraries raise in every run and that no user can act on, each with the reason. Applied
# when each command starts (mnist_exp/config.py), so that they hold however often a process runs one.
QUIET = (
    # Under DDP, Lightning asks for sync_dist=True on epoch-level values; ours come from torchmetrics'
    # compute(), which has already reduced them across processes.
    (".*when logging on epoch level in distributed setting.*", UserWarning),
    # The module, not the data module, owns the input transform (on_after_batch_transfer): by design.
    (".*overridden `on_after_batch_transfer` in `LightningModule`.*", UserWarning),
    # The data is already in memory: extra loader workers only add inter-process copies.
    (".*does not have many workers.*", UserWarning),
    # Lightning 2.6 calls a torch pytree API that torch 2.14 deprecates.
    (r".*isinstance\(treespec, LeafSpec\)` is deprecated.*", Warning),
    # torch's Tensor.__array__ predates numpy 2's `copy` keyword; matplotlib warns when torchmetrics'
    # confusion-matrix plot hands it a tensor.
    (".*__array__ implementation doesn't accept a copy keyword.*", DeprecationWarning),
    # A resumed run writes into its own checkpoints/ dir, which holds the stopped run's checkpoints;
    # a new run's dir is always new (rundirs.ClaimRunDir), so this warning only ever means a resume.
    (".*Checkpoint directory .* exists and is not empty.*", UserWarning),
    # Under bf16, Lightning's model summary estimates the size in MB at 32 bits and says so in every run;
    # the parameter counts it prints are exact.
    (".*is not supported by the model summary.*", UserWarning),
    # Optuna marks the heartbeat (since 2.9), metric names (since 3.2) and, in 4, TPE's multivariate and
    # constant_liar experimental; the study sweeper relies on them (mnist_exp/study/, sampler/tpe.yaml).
    (r".*(fail_stale_trials|set_metric_names) is experimental.*", Warning),
    (r".*Argument ``(heartbeat_interval|grace_period|multivariate|constant_liar)`` is an experimental.*", Warning),
    # The sweeper asks and tells (Hydra launches the jobs) and records the heartbeats itself, in a thread.
    (".*Heartbeat of storage is supposed to be used with Study.optimize.*", UserWarning),
    # MLflow 3's SQL store (logger=mlflow without a server) maps its tables with a loader strategy that
    # SQLAlchemy 2.1 deprecates.
    (".*``noload`` loader strategy is deprecated.*", DeprecationWarning),
)


def quiet_library_warnings() -> None:
    import warnings

    for message, category in QUIET:
        warnings.filterwarnings("ignore", message=message, category=category)
