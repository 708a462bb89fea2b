"""`python -m mnist_exp.summarize`: the same front door as the console script mnist-exp-summarize."""

from mnist_exp.cli import summarize

if __name__ == "__main__":
    summarize()
