"""The Hydra lifecycle around a command, as Hydra callbacks that run before any dir is made: the pre-run
check that builds everything a run builds and refuses a bad value by its key (checks.py), and resuming a
run or continuing a sweep (resume.py). May import the training run, the records, models and data, and
the ground (config, errors, hardware, compat); never a command."""
