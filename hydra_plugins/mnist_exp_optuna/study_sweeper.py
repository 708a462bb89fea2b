"""Hydra finds sweepers only under hydra_plugins/: this one delegates to mnist_exp/study.py."""

from typing import Any

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class OptunaStudySweeper(Sweeper):
    """Hydra's Optuna sweeper, for a study shared by many sweep processes (conf/hydra/sweeper/optuna_study.yaml)."""

    def __init__(self, **config: Any) -> None:
        from mnist_exp.study import (
            OptunaStudySweeperImpl,  # imported when used: Hydra imports every plugin at start
        )

        self.sweeper = OptunaStudySweeperImpl(**config)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.sweeper.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> None:
        return self.sweeper.sweep(arguments)
