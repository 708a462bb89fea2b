from mnist_exp.models.cnn import CNN
from mnist_exp.models.module import DigitClassifier

__all__ = ["CNN", "DigitClassifier"]
