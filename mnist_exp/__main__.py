"""`python -m mnist_exp`: the same front door as the console script mnist-exp (train, or resume with ckpt_path=...)."""

from mnist_exp.cli import train

if __name__ == "__main__":
    train()
