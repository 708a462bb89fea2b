"""Checkpoints are data, not code: found once, read once with torch's safe unpickler, and passed down
as a `Checkpoint` value (its path, its run dir, that run's saved config, its contents).

Every checkpoint read in the project goes through `torch.load(weights_only=True)` (Lightning's own
fit and test loading too), which accepts tensors and plain containers only: a pickle that names any
other Python object (say `os.system`) is refused before anything in it runs, and the refusal names
it (torch.serialization.get_unsafe_globals_in_checkpoint). What training saves is exactly that, so
no allowlist of classes is needed.

A checkpoint also carries its model's Hydra config (`net_config`), which evaluate, predict and
export instantiate. Its `_target_`s may only name the project's own models or a model option that
this installation's configs offer (the `model` group on Hydra's search path, where a user's own
config dir adds theirs); anything else is refused with one line naming the target.
"""

from __future__ import annotations

import copy
import functools
import pickle
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mnist_exp.compat.hydra import group_option_targets
from mnist_exp.errors import CheckpointError
from mnist_exp.records.rundirs import find_checkpoint

PROJECT_MODELS = "mnist_exp.models."


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint resolved once: `last` found, the file read and checked."""

    path: Path
    contents: dict

    @property
    def hparams(self) -> dict:
        return self.contents["hyper_parameters"]

    @property
    def step(self) -> int:
        return int(self.contents.get("global_step", 0))

    @property
    def run_dir(self) -> Path | None:
        """RUN for RUN/checkpoints/NAME.ckpt when RUN holds the run's saved config (.hydra/config.yaml)."""
        run_dir = self.path.parent.parent
        return run_dir if (run_dir / ".hydra" / "config.yaml").is_file() else None

    def saved_config(self, name: str = "config"):
        """The run's .hydra/NAME.yaml (config, hydra, overrides) as OmegaConf; None without a run dir."""
        from omegaconf import OmegaConf

        if self.run_dir is None:
            return None
        path = self.run_dir / ".hydra" / f"{name}.yaml"
        try:
            return OmegaConf.load(path)
        except Exception as error:  # noqa: BLE001  (a damaged file beside the checkpoint)
            raise CheckpointError(f"{path}: cannot be read ({type(error).__name__})") from None


def resolve(value: str, log_dir: str | Path, config_sources: Any = None, unfinished: bool = False) -> Checkpoint:
    """`ckpt_path`'s value (`last` or a file) as a checked Checkpoint; CheckpointError or ConfigError
    when there is none or it is unusable. `unfinished`: `last` is the newest stopped run (a resume)."""
    path = find_checkpoint(str(value), Path(log_dir), unfinished)
    checkpoint = Checkpoint(path, read_checkpoint(path))
    check_targets(checkpoint.hparams["net_config"], path, config_sources)
    return checkpoint


@functools.lru_cache(maxsize=4)
def _load(path: Path, mtime_ns: int, size: int) -> dict:
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)


def read_checkpoint(path: str | Path) -> dict:
    """The checkpoint's contents through torch's safe unpickler (read once per process while the file
    is unchanged); CheckpointError when it is not one."""
    import torch

    path = Path(path).resolve()
    if path.is_dir():
        raise CheckpointError(f"ckpt_path={path}: is a directory, not a checkpoint file")
    if not path.is_file():
        raise CheckpointError(f"ckpt_path={path}: no such file")
    stat = path.stat()
    try:
        checkpoint = copy.deepcopy(_load(path, stat.st_mtime_ns, stat.st_size))  # callers may change their copy
    except pickle.UnpicklingError:
        try:
            unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        except Exception:  # noqa: BLE001  (not even a pickle: a text or other file the unpickler choked on)
            raise CheckpointError(
                f"ckpt_path={path}: not a readable checkpoint (neither a torch archive nor a pickle)"
            ) from None
        raise CheckpointError(
            f"ckpt_path={path}: refused: it holds {', '.join(unsafe) or 'a Python object'}, not only tensors and plain "
            "data; loading it could run code (mnist-exp loads checkpoints with torch's safe unpickler)"
        ) from None
    except Exception as error:  # noqa: BLE001  (torch raises many kinds for a damaged or foreign file)
        raise CheckpointError(f"ckpt_path={path}: not a readable checkpoint ({error.__class__.__name__})") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"ckpt_path={path}: not an mnist-exp checkpoint (no weights inside)")
    net_config = (checkpoint.get("hyper_parameters") or {}).get("net_config")
    if not isinstance(net_config, dict) or "_target_" not in net_config:
        raise CheckpointError(f"ckpt_path={path}: not an mnist-exp checkpoint (it has no model config inside)")
    return checkpoint


def targets_in(node: Any) -> Iterator[str]:
    """Every `_target_` in a config tree (nested dicts and lists)."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            if key == "_target_":
                yield str(value)
            else:
                yield from targets_in(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            yield from targets_in(value)


def offered_model_targets(config_sources: Any = None) -> set[str]:
    """The `_target_` of every option of the `model` config group on the run's search path (the current
    Hydra run's, when config_sources is not given; none outside a Hydra run)."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    if config_sources is None:
        if not HydraConfig.initialized():
            return set()
        config_sources = HydraConfig.get().runtime.config_sources
    if OmegaConf.is_config(config_sources):
        config_sources = OmegaConf.to_container(config_sources)
    return group_option_targets("model", config_sources)


def check_targets(net_config: Mapping, path: str | Path, config_sources: Any = None) -> None:
    """Refuse a model config that would build anything but an allowed model class."""
    targets = list(targets_in(net_config))
    if all(target.startswith(PROJECT_MODELS) for target in targets):
        return
    allowed = offered_model_targets(config_sources)
    for target in targets:
        if not (target.startswith(PROJECT_MODELS) or target in allowed):
            raise CheckpointError(
                f"ckpt_path={path}: refused: its model config names {target}, which is not a model this "
                "installation offers (the project's models or a model/*.yaml on the config search path)"
            )
