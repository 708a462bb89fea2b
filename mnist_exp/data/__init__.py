from mnist_exp.data.datamodule import DigitsDataModule
from mnist_exp.data.sources import DatasetUnavailableError

__all__ = ["DigitsDataModule", "DatasetUnavailableError"]
