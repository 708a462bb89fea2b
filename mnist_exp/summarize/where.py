"""Which runs a table shows: `--where KEY=VALUE` (Hydra's override syntax) compared as values, an unknown
key named with the closest one, and each run's training budget (epochs, share of the training batches)."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from mnist_exp.config import parse_overrides
from mnist_exp.errors import ConfigError
from mnist_exp.summarize.groups import same_value


def config_of(run_dir: Path) -> DictConfig:
    """The run's saved config (empty for a dir without one)."""
    config_file = Path(run_dir) / ".hydra" / "config.yaml"
    return OmegaConf.load(config_file) if config_file.is_file() else OmegaConf.create()


def value_at(config: DictConfig, choices: dict, key: str) -> Any:
    """A config group's chosen option (`optimizer`), else the config's value at `key` (None if absent)."""
    if key in choices:
        return choices[key]
    try:
        return OmegaConf.select(config, key, default=None)
    except Exception:  # noqa: BLE001  (an interpolation that needs Hydra's runtime)
        return None


def dotted_keys(node: Any, prefix: str = "") -> list[str]:
    if not isinstance(node, dict):
        return []
    keys = []
    for key, value in node.items():
        keys.append(f"{prefix}{key}")
        keys += dotted_keys(value, f"{prefix}{key}.")
    return keys


def parsed(where: list[str]) -> list:
    """Each KEY=VALUE as Hydra's parser reads it; anything else refused in one line (before any dir is read)."""
    overrides = []
    for item in where:
        try:
            (override,) = parse_overrides([item])
        except Exception:  # noqa: BLE001  (Hydra's parser refused it)
            override = None
        if override is None or override.is_delete() or override.value() is None and "=" not in item:
            raise ConfigError(f"--where takes KEY=VALUE, got {item}")
        overrides.append(override)
    return overrides


def conditions(where: list[str], runs: list[tuple[DictConfig, dict]]) -> list[tuple[str, Any]]:
    """(key, value) for each KEY=VALUE; an unknown key (in no run's config or group choices) is refused in
    one line with the closest known key."""
    overrides = parsed(where)
    known: set[str] = set()
    for config, choices in runs:
        known |= set(choices) | set(dotted_keys(OmegaConf.to_container(config, resolve=False)))
    found = []
    for override in overrides:
        key = override.key_or_group
        if runs and key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise ConfigError(f"--where {key}: no run here has this key{hint}")
        found.append((key, override.value()))
    return found


def matches(config: DictConfig, choices: dict, wanted: list[tuple[str, Any]]) -> bool:
    """Whether each (key, value) holds, values compared as values (1e-3 is 0.001)."""
    return all(same_value(value, value_at(config, choices, key)) for key, value in wanted)


def budget_of(config: DictConfig) -> str:
    """The training budget: epochs, and the share (or number) of training batches when not all of them."""
    epochs = value_at(config, {}, "trainer.max_epochs")
    limit = value_at(config, {}, "trainer.limit_train_batches")
    budget = f"{epochs}ep" if epochs is not None else "?"
    if limit not in (None, 1.0, 1):
        budget += f"x{limit}" if isinstance(limit, float) else f"x{limit}b"
    return budget
