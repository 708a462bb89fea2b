"""Hydra finds sweepers only under hydra_plugins/: this one delegates to mnist_exp/study/sweeper.py."""

from typing import Any

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class OptunaStudySweeper(Sweeper):
    """The project's Optuna sweeper (mnist_exp/conf/hydra/sweeper/optuna_study.yaml): studies shared by many workers,
    pruning, several objectives."""

    def __init__(self, **config: Any) -> None:
        from mnist_exp.study.sweeper import StudySweeper  # imported when used: Hydra imports every plugin at start

        self.sweeper = StudySweeper(**config)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.sweeper.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> None:
        return self.sweeper.sweep(arguments)
