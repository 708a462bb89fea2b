"""Hyperparameter search on Optuna: the project's Hydra sweeper (sweeper.py) with its search space
(space.py) and storages (storage.py), pruning from inside each job (pruning.py), and what a study holds
as rows and lines (report.py). Light on import: pruning's callback is built in every run."""

STUDY_SWEEPER = "optuna_study"  # the project's sweeper, as hydra/sweeper chooses it (mnist_exp/conf/hydra/sweeper/)
RUN_DIR = "mnist_exp:run_dir"  # a trial's user attr, set when its job returned: the trial ran to an end
