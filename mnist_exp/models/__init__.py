"""The networks (plain nn.Modules) and the LightningModule around them; imported on first use, so that
checking a model's config needs torch but not Lightning."""

__all__ = ["CNN", "DigitClassifier"]


def __getattr__(name: str):
    if name == "CNN":
        from mnist_exp.models.cnn import CNN

        return CNN
    if name == "DigitClassifier":
        from mnist_exp.models.module import DigitClassifier

        return DigitClassifier
    raise AttributeError(f"module 'mnist_exp.models' has no attribute {name!r}")
