"""Check a composed config before any data is fetched or any file is written.

`check_config` raises `ConfigError` with one line naming the key, the allowed values and the value
given: the command's mandatory keys, the keys train.py itself reads, then every class's own rules by
building everything a run builds (mnist_exp/training/build.py) with nothing read and no dir made.
`ConfigCheck`, a Hydra callback (mnist_exp/conf/hydra/default.yaml), runs it before Hydra creates the run dir
(a sweep's: on its base config); a single run's check builds the run for the dir it is about to get and
hands it to `train()`, which fits it (built once). `train()` checks each sweep job's own values.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from mnist_exp.config import keys_given, parse_overrides
from mnist_exp.errors import ConfigError, MissingKeysError, escalated, first_line, is_int
from mnist_exp.records.checkpoints import Checkpoint
from mnist_exp.records.record import finished_run
from mnist_exp.training.build import Run, hand_over, planned_run_dir, run_to_fit

# Keys that train.py itself reads (the classes the config builds check their own arguments).
TRAIN_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "seed": (is_int, "an integer"),
    "test_checkpoint": (lambda v: v in ("best", "last"), "best or last"),
    "torch_threads": (lambda v: v is None or (is_int(v) and v >= 1), "null or an integer >= 1"),
    "trainer.max_epochs": (lambda v: is_int(v) and v >= 1, "an integer >= 1 (the run tests what it trained)"),
}
ABSENT = object()
MISSING = "???"


def shown(value: Any) -> str:
    return (
        repr(value)
        if isinstance(value, str)
        else str(OmegaConf.to_container(value) if OmegaConf.is_config(value) else value)
    )


def missing_keys(config: DictConfig) -> list[str]:
    """The `???` keys of a config (Hydra's own node left out), without resolving any interpolation."""

    def walk(node: Any, prefix: str) -> list[str]:
        if node == MISSING:
            return [prefix.rstrip(".")]
        if isinstance(node, dict):
            return [key for k, v in node.items() for key in walk(v, f"{prefix}{k}.")]
        return []

    tree = OmegaConf.to_container(config, resolve=False)
    tree.pop("hydra", None)
    return walk(tree, "")


def check_required(config: DictConfig) -> None:
    """The command's mandatory keys (`???` in its config) are all given."""
    missing = missing_keys(config)
    if missing:
        raise MissingKeysError(missing)


def check_config(
    cfg: DictConfig, sweep_base: bool = False, single_run: bool = False, build: bool = True
) -> tuple[DictConfig, tuple[Run, Checkpoint | None]] | None:
    """Raise ConfigError for the first value that cannot work (see the module's docstring); sweep_base: the
    config is a sweep's base config, whose jobs set other values; single_run: the objects are built for the
    dir the run is about to get (`hydra.run.dir`; else for a name that is never made); build: build the run
    to check it (a training config). Returns the config the run was built from and the run, when built."""
    check_required(cfg)
    for key, (test, allowed) in TRAIN_RULES.items():
        try:
            value = OmegaConf.select(cfg, key, default=ABSENT)
        except Exception as error:  # noqa: BLE001  (an interpolation that does not resolve)
            raise ConfigError(f"{key}: cannot resolve its value ({first_line(error)})") from None
        if value is not ABSENT and not test(value):
            raise ConfigError(f"{key} must be {allowed}, got {shown(value)}")
    ckpt_path = OmegaConf.select(cfg, "ckpt_path")
    if ckpt_path is not None and (not isinstance(ckpt_path, str) or not ckpt_path):
        raise ConfigError(f"ckpt_path must be null, last, or a checkpoint file, got {shown(ckpt_path)}")
    log_dir = OmegaConf.select(cfg, "paths.log_dir")
    if log_dir is not None and not writable(Path(log_dir)):
        raise ConfigError(
            f"paths.log_dir={log_dir} cannot be written to; choose a dir you can write (paths.log_dir=...)"
        )
    check_accelerator(OmegaConf.select(cfg, "trainer.accelerator"))
    run_dir = OmegaConf.select(cfg, "run_dir")  # mnist-exp-reproduce: a finished run to run again
    if run_dir is not None:
        finished_run(Path(run_dir))
    if OmegaConf.select(cfg, "module") is None:  # not a training config
        return None
    check_batch_limits(cfg)
    if not build:
        return None
    checked = with_run_dir(cfg, planned_run_dir(cfg) if single_run else None)
    return checked, run_to_fit(checked, given=keys_given(cfg), sweep_base=sweep_base, quiet=True)


def check_batch_limits(cfg: DictConfig) -> None:
    """A fraction in `trainer.limit_{train,val}_batches` must leave at least one batch (Lightning refuses it
    only when the loop starts, after the run dir is made), from sizes alone."""
    data, trainer = cfg.data, cfg.trainer
    sizes = {
        "train": (data.get("train_size"), data.get("val_size"), data.get("batch_size")),
        "val": (data.get("val_size"), 0, data.get("eval_batch_size") or data.get("batch_size")),
    }
    for stage, (images, held_out, batch) in sizes.items():
        limit = trainer.get(f"limit_{stage}_batches")
        if not (isinstance(limit, float) and 0 < limit < 1) or not all(is_int(n) for n in (images, held_out, batch)):
            continue
        batches = -(-max(images - held_out, 0) // max(batch, 1))
        if batches and int(batches * limit) < 1:
            raise ConfigError(
                f"trainer.limit_{stage}_batches={limit} leaves no batch of the {batches} {stage} batch"
                f"{'es' if batches > 1 else ''} ({stage} images {images - held_out}, batch size {batch}); "
                f"give at least {1 / batches:.3g}, or a whole number of batches"
            )


def writable(path: Path) -> bool:
    """Whether `path` is a dir this process can write into, or can be created as one."""
    while not path.exists():
        if path.parent == path:
            return False
        path = path.parent
    return path.is_dir() and os.access(path, os.W_OK | os.X_OK)


def check_accelerator(accelerator: Any) -> None:
    """A GPU asked for by name must be there: say so before any data is fetched."""
    if accelerator in ("gpu", "cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(
                f"trainer.accelerator={accelerator}, but torch sees no CUDA GPU here; "
                "use trainer=cpu (or trainer.accelerator=auto)"
            )
    elif accelerator == "mps":
        import torch

        if not torch.backends.mps.is_available():
            raise ConfigError("trainer.accelerator=mps, but this machine has no Apple MPS device; use trainer=cpu")


def with_run_dir(config: DictConfig, run_dir: str | None) -> DictConfig:
    """The config with paths.output_dir named but not made (Hydra sets the real one when it makes the dir):
    `run_dir`, or else a name that is never made."""
    checked = OmegaConf.masked_copy(config, [k for k in config.keys() if k != "hydra"])
    if OmegaConf.select(checked, "paths") is not None:
        placeholder = Path(OmegaConf.select(config, "paths.log_dir") or ".") / "run-dir-not-made-yet"
        checked.paths.output_dir = run_dir or str(placeholder)
    return checked


class ConfigCheck(Callback):
    """Hydra callback: check the config before Hydra creates the run dir (single runs: the run it built is
    handed to train()) or the sweep dir (multiruns: the sweep's base config; each job's own values are checked
    in train())."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        with escalated():
            checked = check_config(config, single_run=True)
        if checked is not None:  # train() fits this run rather than build another
            hand_over(*checked)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        with escalated():
            check_config(first_job(config, kwargs.get("config_name") or "train"), sweep_base=True)


def first_job(config: DictConfig, config_name: str) -> DictConfig:
    """The sweep's first job's config, composed now, before the sweep dir exists: a misspelled swept key
    (`-m optimzer.lr=0.1,0.2`) or a value one job needs (`+callbacks.x.step=1,2`) is known now, not by each
    job after the sweep dir and its multirun.yaml are written. Inside the running app, Hydra's compose API
    composes with the app's own search path."""
    from hydra import compose

    overrides = parse_overrides(config.hydra.overrides.task)
    if not any(o.is_sweep_override() for o in overrides):
        return config
    first = []
    for override in overrides:
        if not override.is_sweep_override():
            first.append(override.input_line)
            continue
        try:
            first.append(f"{override.get_key_element()}={next(override.sweep_string_iterator())}")
        except Exception:  # noqa: BLE001  (an interval: a search space's, left to the sweeper)
            continue
    hydra_overrides = list(config.hydra.overrides.hydra)  # hydra.searchpath among them: the user's config dirs
    return compose(config_name, overrides=[*hydra_overrides, *first], return_hydra_config=True)
