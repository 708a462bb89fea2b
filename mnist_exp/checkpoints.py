"""Checkpoints are data, not code: read them with torch's safe unpickler and build only allowed classes.

Every checkpoint read in the project (evaluate, predict, export, resume, the TensorBoard purge step,
Lightning's own fit and test loading) goes through `torch.load(weights_only=True)`, which accepts
tensors and plain containers only: a pickle that names any other Python object (say `os.system`)
is refused before anything in it runs. What training saves is exactly that, so no allowlist of
classes is needed.

A checkpoint also carries its model's Hydra config (`net_config`), which evaluate, predict and
export instantiate. Its `_target_`s may only name the project's own models or a model option that
this installation's configs offer (the `model` group on Hydra's search path, where a user's own
config dir adds theirs); anything else is refused with one line naming the target.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from mnist_exp.errors import CheckpointError

PROJECT_MODELS = "mnist_exp.models."


def read_checkpoint(path: str | Path) -> dict:
    """The checkpoint's contents through torch's safe unpickler; CheckpointError when it is not one."""
    import torch

    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"ckpt_path={path}: is a directory, not a checkpoint file")
    if not path.is_file():
        raise CheckpointError(f"ckpt_path={path}: no such file")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        unsupported = next((line.strip() for line in str(error).splitlines() if "GLOBAL" in line), "")
        detail = unsupported.split("GLOBAL", 1)[1].split()[0] if unsupported else "a Python object"
        raise CheckpointError(
            f"ckpt_path={path}: refused: it holds {detail}, not only tensors and plain data; "
            "loading it could run code (mnist-exp loads checkpoints with torch's safe unpickler)"
        ) from None
    except Exception as error:  # torch raises many kinds for a damaged or foreign file
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


def model_options_repository(config_sources=None):
    """Hydra's config repository over the run's whole search path: the project's conf/ and every dir
    added with hydra.searchpath (hydra.runtime.config_sources); None outside a Hydra app."""
    from hydra._internal.config_repository import ConfigRepository
    from hydra._internal.config_search_path_impl import ConfigSearchPathImpl
    from hydra.core.hydra_config import HydraConfig

    if config_sources is None:
        if not HydraConfig.initialized():
            return None
        config_sources = HydraConfig.get().runtime.config_sources
    search_path = ConfigSearchPathImpl()
    for source in config_sources:
        search_path.append(source.provider, f"{source.schema}://{source.path}")
    return ConfigRepository(search_path)


def offered_model_targets(config_sources=None) -> set[str]:
    """The `_target_` of every option of the `model` config group on the run's search path."""
    repository = model_options_repository(config_sources)
    if repository is None:
        return set()
    targets: set[str] = set()
    for option in repository.get_group_options("model"):
        try:
            loaded = repository.load_config(f"model/{option}")
        except Exception:  # noqa: BLE001  (an option that does not load offers nothing)
            continue
        if loaded is not None and loaded.config.get("_target_"):
            targets.add(str(loaded.config.get("_target_")))
    return targets


def check_targets(net_config: Mapping, path: str | Path, allowed: Iterable[str] = (), config_sources=None) -> None:
    """Refuse a model config that would build anything but an allowed model class."""
    allowed = set(allowed) | offered_model_targets(config_sources)
    for target in targets_in(net_config):
        if not (target.startswith(PROJECT_MODELS) or target in allowed):
            raise CheckpointError(
                f"ckpt_path={path}: refused: its model config names {target}, which is not a model this "
                "installation offers (the project's models or a model/*.yaml on the config search path)"
            )


def check_same_model(net_config: Mapping, requested: Mapping, path: str | Path) -> None:
    """Every key the requested model config sets must equal the checkpoint's."""
    differ = {k: (v, net_config.get(k)) for k, v in requested.items() if net_config.get(k) != v}
    if differ:
        detail = ", ".join(f"model.{k}={ckpt!r} in the checkpoint but {want!r} requested" for k, (want, ckpt) in differ.items())
        raise CheckpointError(f"ckpt_path={path} does not match the requested model: {detail}")
