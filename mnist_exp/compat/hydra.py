"""Hydra's config repository: the options of a config group over a run's whole search path, outside a
composition. Hydra has no public API that loads one group option's file (hydra._internal)."""

from __future__ import annotations

from typing import Any


def group_option_targets(group: str, config_sources: Any) -> set[str]:
    """The `_target_` of every option of `group` on the search path made of `config_sources`
    (hydra.runtime.config_sources: the project's mnist_exp/conf/ and every hydra.searchpath dir)."""
    from hydra._internal.config_repository import ConfigRepository
    from hydra._internal.config_search_path_impl import ConfigSearchPathImpl
    from hydra.core.plugins import Plugins

    Plugins.instance()  # registers the config sources (file://, pkg://) as a Hydra app's start does

    search_path = ConfigSearchPathImpl()
    for source in config_sources:
        search_path.append(source["provider"], f"{source['schema']}://{source['path']}")
    repository = ConfigRepository(search_path)
    targets: set[str] = set()
    for option in repository.get_group_options(group):
        try:
            loaded = repository.load_config(f"{group}/{option}")
        except Exception:  # noqa: BLE001  (an option that does not load offers nothing)
            continue
        if loaded is not None and loaded.config.get("_target_"):
            targets.add(str(loaded.config.get("_target_")))
    return targets
