"""`python -m mnist_exp.export`: the same front door as the console script mnist-exp-export."""

from mnist_exp.cli import export

if __name__ == "__main__":
    export()
