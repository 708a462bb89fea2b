"""Hyperparameter search on Optuna: the project's Hydra sweeper (sweeper.py) with its search space
(space.py) and storages (storage.py), pruning from inside each job (pruning.py), and what a study holds
as rows and lines (report.py). Light on import: pruning's callback is built in every run."""

NO_PRUNER = "optuna.pruners.NopPruner"  # hydra/sweeper/pruner=none: the sweeper asks, the jobs report nothing
RUN_DIR = "mnist_exp:run_dir"  # a trial's user attr, set when its job returned: the trial ran to an end
