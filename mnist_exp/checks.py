"""Check a composed training config before any data is fetched or any file is written.

`check_config` raises `ConfigError` with one line naming the key, the allowed values and the
value given. `ConfigCheck`, a Hydra callback (conf/hydra/default.yaml), runs it before Hydra
creates the run dir (a sweep's: on its base config); `train()` runs it for each sweep job's own
values. Hydra's own composition errors (misspelled keys, unknown group options) become one line in
mnist_exp/cli.py.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from mnist_exp.errors import ConfigError, exit_with, is_int
from mnist_exp.rundirs import find_checkpoint

# Keys that train.py itself reads (the classes the config builds check their own arguments).
TRAIN_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "seed": (is_int, "an integer"),
    "test_checkpoint": (lambda v: v in ("best", "last"), "best or last"),
    "torch_threads": (lambda v: v is None or (is_int(v) and v >= 1), "null or an integer >= 1"),
    "trainer.max_epochs": (lambda v: is_int(v) and v >= 1, "an integer >= 1 (the run tests what it trained)"),
}
ABSENT = object()


def shown(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(OmegaConf.to_container(value) if OmegaConf.is_config(value) else value)


def check_config(cfg: DictConfig) -> None:
    """Raise ConfigError for the first value that cannot work: train.py's own keys, the rules that span
    several groups, then every class's own rules by building the cheap objects (build_cheap_objects).
    A checkpoint given as `ckpt_path=last` is replaced by the file it names now."""
    for key, (test, allowed) in TRAIN_RULES.items():
        try:
            value = OmegaConf.select(cfg, key, default=ABSENT)
        except Exception as error:  # noqa: BLE001  (an interpolation that does not resolve)
            raise ConfigError(f"{key}: cannot resolve its value ({str(error).splitlines()[0]})") from None
        if value is not ABSENT and not test(value):
            raise ConfigError(f"{key} must be {allowed}, got {shown(value)}")
    ckpt_path = OmegaConf.select(cfg, "ckpt_path")
    if ckpt_path is not None:
        if not isinstance(ckpt_path, str) or not ckpt_path:
            raise ConfigError(f"ckpt_path must be null, last, or a checkpoint file, got {shown(ckpt_path)}")
        checkpoint = find_checkpoint(ckpt_path, Path(OmegaConf.select(cfg, "paths.log_dir")))
        check_resumable(cfg, checkpoint)
        cfg.ckpt_path = str(checkpoint)  # `last` pinned: the run uses the checkpoint checked here, config.yaml names it
    log_dir = OmegaConf.select(cfg, "paths.log_dir")
    if log_dir is not None and not writable(Path(log_dir)):
        raise ConfigError(f"paths.log_dir={log_dir} cannot be written to; choose a dir you can write (paths.log_dir=...)")
    check_accelerator(OmegaConf.select(cfg, "trainer.accelerator"))
    build_cheap_objects(cfg)


def built(group: str, cfg: DictConfig, make: Callable[[], Any]) -> Any:
    """make(), with its failure as one line: a class's own ConfigError as it is, anything else named by group."""
    from hydra.errors import InstantiationException

    try:
        return make()
    except ConfigError:
        raise
    except Exception as error:  # noqa: BLE001  (the class refused its arguments: say which group, and why)
        cause = error.__cause__ if isinstance(error, InstantiationException) and error.__cause__ else error
        if isinstance(cause, ConfigError):
            raise cause from None
        target = OmegaConf.select(cfg, f"{group}._target_") or group
        reason = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
        raise ConfigError(f"{group}: {target} cannot be built from this config: {reason}") from None


def build_cheap_objects(cfg: DictConfig) -> None:
    """Build what a run builds first — model, transforms, data module (nothing read), optimizer, the
    LightningModule, the Trainer — so that each class checks its own arguments before any dir exists."""
    import logging

    from hydra.utils import instantiate

    from mnist_exp.hardware import resolve_precision

    if OmegaConf.select(cfg, "model") is None or OmegaConf.select(cfg, "module") is None:
        return  # not a training config
    net = built("model", cfg, lambda: instantiate(cfg.model))
    built("transforms", cfg, lambda: instantiate(cfg.transforms))
    built("data", cfg, lambda: instantiate(cfg.data))
    built("optimizer", cfg, lambda: instantiate(cfg.optimizer)(net.parameters()))
    built("module", cfg, lambda: instantiate(cfg.module)(net=net, optimizer=None))
    quiet = [logging.getLogger(name) for name in ("pytorch_lightning", "lightning_fabric", "lightning.pytorch")]
    levels = [logger.level for logger in quiet]
    for logger in quiet:
        logger.setLevel(logging.WARNING)  # the Trainer's "GPU available" lines belong to the run itself
    try:
        precision, _ = resolve_precision(cfg.trainer.precision, cfg.trainer.accelerator)
        built("trainer", cfg, lambda: instantiate(cfg.trainer, default_root_dir=None, logger=False, callbacks=[],
                                                  enable_checkpointing=False, precision=precision))
    finally:
        for logger, level in zip(quiet, levels):
            logger.setLevel(level)


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
            raise ConfigError(f"trainer.accelerator={accelerator}, but torch sees no CUDA GPU here; use trainer=cpu (or trainer.accelerator=auto)")
    elif accelerator == "mps":
        import torch

        if not torch.backends.mps.is_available():
            raise ConfigError("trainer.accelerator=mps, but this machine has no Apple MPS device; use trainer=cpu")


def requested_model_keys(cfg: DictConfig, overrides: list[str]) -> dict:
    """The model.* keys set on the command line, with their values as composed."""
    keys = {o.split("=", 1)[0].lstrip("+~").split(".", 1)[1] for o in overrides if o.lstrip("+~").startswith("model.")}
    model = OmegaConf.to_container(cfg.model, resolve=True)
    return {key: model[key] for key in keys if key in model}


def check_resumable(cfg: DictConfig, checkpoint: Path) -> None:
    """The checkpoint is a safe mnist-exp checkpoint whose model config names only allowed models; a
    training config (one with a `module`) resumes it into `model`, so the two must match in full."""
    from mnist_exp.checkpoints import (
        CheckpointError,
        check_same_model,
        check_targets,
        read_checkpoint,
    )

    try:
        net_config = read_checkpoint(checkpoint)["hyper_parameters"]["net_config"]
        check_targets(net_config, checkpoint, config_sources=OmegaConf.select(cfg, "hydra.runtime.config_sources"))
        if OmegaConf.select(cfg, "module") is not None and OmegaConf.select(cfg, "model") is not None:
            check_same_model(net_config, OmegaConf.to_container(cfg.model, resolve=True), checkpoint)
        elif OmegaConf.select(cfg, "model") is not None:  # evaluate: the model keys given must match
            check_same_model(net_config, requested_model_keys(cfg, OmegaConf.select(cfg, "hydra.overrides.task") or []), checkpoint)
    except CheckpointError as error:
        raise ConfigError(str(error)) from None


class ConfigCheck(Callback):
    """Hydra callback: check the config before Hydra creates the run dir (single runs) or the sweep
    dir (multiruns: the sweep's base config; each job's own values are checked again in train())."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config)

    @staticmethod
    def _check(config: DictConfig) -> None:
        from mnist_exp.cli import check_required

        check_required(config, str(config.hydra.job.config_name))
        try:
            check_config(config)
        except ConfigError as error:
            exit_with(str(error))
