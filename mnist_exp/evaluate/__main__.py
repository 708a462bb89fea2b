"""`python -m mnist_exp.evaluate`: the same front door as the console script mnist-exp-evaluate."""

from mnist_exp.cli import evaluate

if __name__ == "__main__":
    evaluate()
