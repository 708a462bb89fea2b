"""The grid sweeper of `-m key=a,b,c` (mnist_exp/conf/hydra/sweeper/grid.yaml, the default): Hydra's basic
sweeper, each job's config composed once.

Hydra's basic sweeper composes every job of a batch to check it before anything runs, and its launcher then
composes each job again. Here the launcher gets the config the check composed: 0.1 s a job on a 2-core AMD
EPYC (the train config's defaults tree). Every launcher (basic, joblib, submitit) asks Hydra's config loader
for a job's config; the loader handed to this sweeper and its launcher keeps each checked config until the
launcher asks for it once.
"""

from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class ComposedOnce:
    """Hydra's config loader, with each sweep config it composes kept until it is asked for again once."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader
        self.composed: dict[tuple[str, ...], DictConfig] = {}

    def load_sweep_config(self, master_config: DictConfig, sweep_overrides: list[str]) -> DictConfig:
        key = tuple(sweep_overrides)
        if key in self.composed:  # the check composed it: the launcher takes it (and may change it)
            return self.composed.pop(key)
        self.composed[key] = self.loader.load_sweep_config(master_config, list(sweep_overrides))
        return self.composed[key]

    def __getattr__(self, name: str) -> Any:  # the rest of the loader's API, as it is
        if name in ("loader", "composed"):  # (not yet set: while unpickling in a joblib worker)
            raise AttributeError(name)
        return getattr(self.loader, name)


class GridSweeper(BasicSweeper):
    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        once = HydraContext(config_loader=ComposedOnce(hydra_context.config_loader), callbacks=hydra_context.callbacks)
        super().setup(hydra_context=once, task_function=task_function, config=config)
