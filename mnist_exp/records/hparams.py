"""What TensorBoard shows of a run: the parameters that define the experiment, and chart layouts.

The HParams tab gets the chosen option of each config group by name (`optimizer: sgd`,
`experiment: fast`), then the keys that define the model, optimizer, schedule, data and training
(in a sweep the swept keys are shown; in a single run its command-line overrides), and the metrics
`test/acc`, `test/loss`, `val/acc_best`, `fit_seconds`. Paths, callbacks, loggers and Hydra
internals stay out (the whole config is in the run's .hydra/config.yaml).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from mnist_exp.compat.tensorboard import file_writer as compat_file_writer
from mnist_exp.config import is_multirun, parse_overrides
from mnist_exp.records.rundirs import write_text_atomically

# Config groups whose chosen option names the experiment (hydra/*, paths, logger, callbacks do not).
GROUPS = ("experiment", "data", "model", "transforms", "optimizer", "scheduler", "trainer", "hparams_search")
# Subtrees whose scalar values are parameters, and single keys.
SUBTREES = ("model", "optimizer", "scheduler.scheduler", "module")
KEYS = (
    "seed",
    "data.batch_size",
    "data.val_size",
    "transforms.mean",
    "transforms.std",
    "trainer.max_epochs",
    "test_checkpoint",
)
LEFT_OUT = ("_target_", "_partial_", "_recursive_", "_convert_", "num_classes", "compile")
METRICS = ("test/acc", "test/loss", "val/acc_best", "fit_seconds")
# TensorBoard's HParams table shows five columns until a user ticks more: those marked `differs`, in name order
# (its server sorts by it, its page shows the first five). A run cannot know which keys differ among the runs a
# user opens together, so it marks its own overrides (a sweep's swept keys) and then these, up to five: the run's
# name (TensorBoard's Trial ID column cuts a run's path after 10 characters, e.g. `2026-12-04/14-...`) and what
# most often tells two runs apart (without `optimizer`, an SGD run and an Adam run read alike).
SHOWN_BY_TENSORBOARD = 5
SHOWN_FIRST = ("run", "optimizer", "optimizer.lr", "model.channels", "data.batch_size", "trainer.max_epochs")
# Custom scalars: train and validation on one chart each for loss and accuracy (tags are regexes:
# anchored, so that train/loss_step and val/acc_best stay out).
LAYOUT = {
    "train and validation": {
        "loss": ["Multiline", ["^train/loss$", "^val/loss$"]],
        "accuracy": ["Multiline", ["^train/acc$", "^val/acc$"]],
    }
}


def plain(value: Any) -> Any:
    """A value TensorBoard's HParams accepts (bool, number or string)."""
    return value if isinstance(value, (bool, int, float, str)) else str(value)


def experiment_params(cfg: DictConfig, choices: Mapping[str, Any], leading: list[str], precision: str) -> dict:
    """The parameters of one run, in display order: the `leading` keys, group choices, then the rest."""
    params: dict[str, Any] = {}
    for subtree in SUBTREES:
        node = OmegaConf.select(cfg, subtree)
        if OmegaConf.is_dict(node):
            for key, value in OmegaConf.to_container(node, resolve=True).items():
                if key not in LEFT_OUT and not isinstance(value, (dict, list)):
                    params[f"{subtree}.{key}"] = plain(value)
    for key in KEYS:
        value = OmegaConf.select(cfg, key, default=None)
        if value is not None and not OmegaConf.is_config(value):
            params[key] = plain(value)
    params["trainer.precision"] = precision
    groups = {group: str(choices.get(group)) for group in GROUPS if choices.get(group) is not None}
    # a run without a preset says so: TensorBoard takes the columns from one run, which may be that one
    groups.setdefault("experiment", "none")
    swept = {}
    for key in leading:
        if key in params:
            swept[key] = params.pop(key)
        elif key in groups:
            swept[key] = groups.pop(key)
    return {**swept, **groups, **params}


def as_written(value: Any) -> Any:
    """A whole number or a switch as text (16, true); other values as they are."""
    if isinstance(value, bool):
        return str(value).lower()
    return str(value) if isinstance(value, int) else value


def shown_columns(params: Mapping[str, Any], leading: list[str]) -> set[str]:
    """The columns TensorBoard's HParams table shows before a user ticks more: the run's own overrides, then
    SHOWN_FIRST, five in all (more when the run overrides more than five keys)."""
    shown = [key for key in leading if key in params]
    shown += [key for key in SHOWN_FIRST if key in params and key not in shown]
    return set(shown[: max(SHOWN_BY_TENSORBOARD, len(set(leading) & set(params)))])


def hparams_summaries(params: Mapping[str, Any], shown: set[str]) -> tuple:
    """TensorBoard's HParams records for one run: the experiment (its columns, those in `shown` marked
    as differing, which TensorBoard shows first), the session start and end.

    torch's `hparams` builds them; the `differs` marks are added here, since neither it nor
    Lightning's log_hyperparams can set them (a sweep's swept keys would sit among the rest in name
    order, most of them hidden)."""
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData
    from torch.utils.tensorboard.summary import hparams

    # TensorBoard keeps numbers as doubles and shows an integer as 16.000 (torch's hparams makes a bool 1.000):
    # whole numbers (widths, batch sizes, epochs, seeds) and switches go as text, shown as they were written
    written = {key: as_written(value) for key, value in params.items()}
    experiment, session_start, session_end = hparams(written, {tag: 0.0 for tag in METRICS})
    content = experiment.value[0].metadata.plugin_data
    data = HParamsPluginData.FromString(content.content)
    for info in data.experiment.hparam_infos:
        info.differs = info.name in shown
    content.content = data.SerializeToString()
    return experiment, session_start, session_end


def leading_keys(hydra) -> list[str]:
    """The keys to show first: in a sweep the swept ones (the multirun's sweep overrides, e.g.
    `model.channels=8,16`, and an Optuna search space), in a single run its command-line overrides."""

    if not is_multirun(hydra):
        return [o.lstrip("+~").split("=", 1)[0] for o in hydra.overrides.task]
    keys = list((hydra.sweeper.get("params") or {}).keys())
    multirun = Path(hydra.sweep.dir) / "multirun.yaml"  # the sweep's own command line, written by Hydra
    if multirun.is_file():
        task = list(yaml.safe_load(multirun.read_text())["hydra"]["overrides"]["task"])  # (not OmegaConf.load:
        # the whole config as a DictConfig, 0.04 s a job)
        keys += [o.key_or_group for o in parse_overrides(task) if o.is_sweep_override()]
    return list(dict.fromkeys(keys))


def log_experiment(trainer, cfg: DictConfig, metrics: Mapping[str, Any], precision: str) -> None:
    """The HParams entry, the metrics it shows and the chart layout, for each TensorBoard logger."""
    from hydra.core.hydra_config import HydraConfig
    from pytorch_lightning.loggers import TensorBoardLogger

    hydra = HydraConfig.get() if HydraConfig.initialized() else None
    choices = dict(hydra.runtime.choices) if hydra else {}
    leading = leading_keys(hydra) if hydra else []
    params = {
        "run": Path(cfg.paths.output_dir).name,  # the part of its path that tells it apart
        **experiment_params(cfg, choices, leading, precision),
        "status": metrics.get("status", "ok"),
    }
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            writer = logger.experiment
            file_writer = compat_file_writer(writer)  # reopened after the test stage closed it (as Lightning does)
            for summary in hparams_summaries(params, shown_columns(params, leading)):
                file_writer.add_summary(summary)
            # HParams shows each metric's last value in the run; test/* and val/acc_best are logged already.
            writer.add_scalar("fit_seconds", metrics["fit_seconds"], trainer.global_step)
            writer.add_custom_scalars(LAYOUT)
            # hparams.yaml: Lightning writes it once, empty, when fit ends (before these are known)
            write_text_atomically(Path(logger.log_dir) / "hparams.yaml", yaml.safe_dump(dict(params), sort_keys=False))
            logger.finalize("success")
