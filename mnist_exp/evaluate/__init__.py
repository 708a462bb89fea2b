"""`mnist-exp-evaluate` (python -m mnist_exp.evaluate): test a checkpoint on a dataset's test set; the command
is command.py. This file imports nothing, so that `--help` and `--cfg` answer without torch (mnist_exp/cli.py)."""
