"""hydra-optuna-sweeper keeps its ask -> launch -> tell loop and its search-space parsing in a private module
(`_impl`); mnist_exp/study.py builds its shared-study sweeper on them."""

from hydra_plugins.hydra_optuna_sweeper._impl import OptunaSweeperImpl, create_params_from_overrides

__all__ = ["OptunaSweeperImpl", "create_params_from_overrides"]
