"""`python -m mnist_exp.reproduce`: the same front door as the console script mnist-exp-reproduce."""

from mnist_exp.cli import reproduce

if __name__ == "__main__":
    reproduce()
