"""`mnist-exp-predict` (python -m mnist_exp.predict): the digits in real image files; the command is command.py.
This file imports nothing, so that `--help` and `--cfg` answer without importing torch (mnist_exp/cli.py)."""
