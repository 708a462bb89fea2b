"""Datasets: verified files (sources), IDX reading, the data module. Imported on first use, so that
checking a transform's or reader's config does not import Lightning."""

__all__ = ["DigitsDataModule"]


def __getattr__(name: str):
    if name == "DigitsDataModule":
        from mnist_exp.data.datamodule import DigitsDataModule

        return DigitsDataModule
    raise AttributeError(f"module 'mnist_exp.data' has no attribute {name!r}")
