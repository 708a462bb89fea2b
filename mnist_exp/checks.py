"""Check a composed training config before any data is fetched or any file is written.

`check_config` raises `ConfigError` with one line naming the key, the allowed values and the
value given. `ConfigCheck`, a Hydra callback (conf/hydra/default.yaml), runs it before Hydra
creates the run dir; `train()` runs it again for each sweep job. Hydra's own composition errors
(misspelled keys, unknown group options) become one line in mnist_exp/cli.py.
"""

from __future__ import annotations

import math
import os
from numbers import Integral, Real
from pathlib import Path
from typing import Any, Callable

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from mnist_exp.errors import ConfigError, exit_with
from mnist_exp.rundirs import find_checkpoint

ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps", "tpu")
PRECISIONS = (
    "auto", "64-true", "32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "transformer-engine",
    "64", "32", "16", "bf16", 64, 32, 16,
)


ABSENT = object()


def is_int(value: Any) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """A finite real number (nan and inf make no sense for any key checked here)."""
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)


def at_least(minimum: int) -> Callable[[Any], bool]:
    return lambda v: is_int(v) and v >= minimum


def is_fraction_or_count(value: Any) -> bool:
    """Lightning's limit_*_batches: a fraction in (0, 1] or a whole number of batches >= 1."""
    return (is_int(value) and value >= 1) or (is_number(value) and 0.0 < value <= 1.0)


def is_devices(value: Any) -> bool:
    if value == "auto" or (is_int(value) and (value >= 1 or value == -1)):
        return True
    if isinstance(value, str):
        return all(part.strip().isdigit() for part in value.split(",") if part.strip()) and value.strip(", ") != ""
    return OmegaConf.is_list(value) and len(value) > 0 and all(is_int(v) and v >= 0 for v in value)


# key -> (test, what is allowed). Keys missing from the config (e.g. a model without dropout) are skipped.
RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "seed": (is_int, "an integer"),
    "test_checkpoint": (lambda v: v in ("best", "last"), "best or last"),
    "torch_threads": (lambda v: v is None or (is_int(v) and v >= 1), "null or an integer >= 1"),
    "model.channels": (at_least(1), "an integer >= 1"),
    "model.hidden": (at_least(1), "an integer >= 1"),
    "model.convs_per_block": (at_least(1), "an integer >= 1"),
    "model.kernel_size": (lambda v: is_int(v) and v >= 1 and v % 2 == 1, "an odd integer >= 1"),
    "model.dropout": (lambda v: is_number(v) and 0.0 <= v < 1.0, "a number in [0, 1)"),
    "model.batch_norm": (lambda v: isinstance(v, bool), "true or false"),
    "data.batch_size": (at_least(1), "an integer >= 1"),
    "data.eval_batch_size": (at_least(1), "an integer >= 1"),
    "data.val_size": (at_least(1), "an integer >= 1"),
    "data.num_workers": (at_least(0), "an integer >= 0"),
    "optimizer.lr": (lambda v: is_number(v) and v > 0, "a number > 0"),
    "optimizer.weight_decay": (lambda v: is_number(v) and v >= 0, "a number >= 0"),
    "optimizer.momentum": (lambda v: is_number(v) and v >= 0, "a number >= 0"),
    "transforms.std": (lambda v: is_number(v) and v > 0, "a number > 0"),
    "module.label_smoothing": (lambda v: is_number(v) and 0.0 <= v < 1.0, "a number in [0, 1)"),
    "module.tta_shifts": (at_least(0), "an integer >= 0"),
    "trainer.max_epochs": (at_least(1), "an integer >= 1"),
    "trainer.accelerator": (lambda v: v in ACCELERATORS, f"one of {', '.join(ACCELERATORS)}"),
    "trainer.devices": (is_devices, "auto, an integer >= 1 (or -1 for all), or a list of device indices"),
    "trainer.num_nodes": (at_least(1), "an integer >= 1"),
    "trainer.precision": (lambda v: v in PRECISIONS, "auto or one of 32-true, 16-mixed, bf16-mixed, 64-true, 16-true, bf16-true"),
    "trainer.limit_train_batches": (is_fraction_or_count, "a fraction in (0, 1] or a number of batches >= 1"),
    "trainer.limit_val_batches": (is_fraction_or_count, "a fraction in (0, 1] or a number of batches >= 1"),
    "trainer.log_every_n_steps": (at_least(1), "an integer >= 1"),
    "trainer.accumulate_grad_batches": (at_least(1), "an integer >= 1"),
    "trainer.gradient_clip_val": (lambda v: v is None or (is_number(v) and v > 0), "null or a number > 0"),
}


def shown(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(OmegaConf.to_container(value) if OmegaConf.is_config(value) else value)


def check_config(cfg: DictConfig) -> None:
    """Raise ConfigError for the first value that cannot work."""
    for key, (test, allowed) in RULES.items():
        try:
            value = OmegaConf.select(cfg, key, default=ABSENT)
        except Exception as error:  # an interpolation that does not resolve
            raise ConfigError(f"{key}: cannot resolve its value ({str(error).splitlines()[0]})") from None
        if value is not ABSENT and not test(value):
            raise ConfigError(f"{key} must be {allowed}, got {shown(value)}")
    train_size = OmegaConf.select(cfg, "data.train_size")
    val_size = OmegaConf.select(cfg, "data.val_size")
    if is_int(train_size) and is_int(val_size) and val_size >= train_size:
        raise ConfigError(f"data.val_size must be smaller than the {train_size} training images (data.train_size), got {val_size}")
    ckpt_path = OmegaConf.select(cfg, "ckpt_path")
    if ckpt_path is not None:
        if not isinstance(ckpt_path, str) or not ckpt_path:
            raise ConfigError(f"ckpt_path must be null, last, or a checkpoint file, got {shown(ckpt_path)}")
        check_resumable(cfg, find_checkpoint(ckpt_path, Path(OmegaConf.select(cfg, "paths.log_dir"))))
    log_dir = OmegaConf.select(cfg, "paths.log_dir")
    if log_dir is not None and not writable(Path(log_dir)):
        raise ConfigError(f"paths.log_dir={log_dir} cannot be written to; choose a dir you can write (paths.log_dir=...)")
    check_accelerator(OmegaConf.select(cfg, "trainer.accelerator"))


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
        check_targets(net_config, checkpoint)
        if OmegaConf.select(cfg, "module") is not None and OmegaConf.select(cfg, "model") is not None:
            check_same_model(net_config, OmegaConf.to_container(cfg.model, resolve=True), checkpoint)
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
