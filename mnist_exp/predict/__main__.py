"""`python -m mnist_exp.predict`: the same front door as the console script mnist-exp-predict."""

from mnist_exp.cli import predict

if __name__ == "__main__":
    predict()
