"""`mnist-exp-export` (python -m mnist_exp.export): a checkpoint as a standalone model; the command is command.py.
This file imports nothing, so that `--help` and `--cfg` answer without importing torch (mnist_exp/cli.py)."""
