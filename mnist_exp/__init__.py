"""mnist-exp: config-driven CNN experiments on MNIST-like handwritten digits."""

import importlib
import importlib.abc
import importlib.util
import os
import sys
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
# The configs ship inside the package (in a checkout and in an installed wheel alike).
CONFIG_DIR = PACKAGE_DIR / "conf"
# The checkout the package runs from (an editable install, as scripts/bootstrap.sh makes), whose git commit runs
# record; None for an installed wheel, whose parent dir is site-packages.
PROJECT_ROOT = PACKAGE_DIR.parent if (PACKAGE_DIR.parent / "pyproject.toml").is_file() else None


def data_home() -> Path:
    """Where datasets are fetched to and shared by every run: $MNIST_EXP_DATA when set; else the checkout's
    data/ when the package runs from one; else the user's cache dir ($XDG_CACHE_HOME or ~/.cache)/mnist-exp."""
    if os.environ.get("MNIST_EXP_DATA"):
        return Path(os.environ["MNIST_EXP_DATA"]).expanduser()
    if PROJECT_ROOT is not None:
        return PROJECT_ROOT / "data"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "mnist-exp"


# Modules that moved into the layer folders (docs/architecture.md). Run configs saved before the move name
# them by their old names (`_target_: mnist_exp.callbacks.EpochLog`): a resume or reproduce of such a run
# imports them by those names, which this finder maps to the new modules.
MOVED = {
    **{f"mnist_exp.{name}": f"mnist_exp.lifecycle.{name}" for name in ("checks", "resume")},
    **{f"mnist_exp.{name}": f"mnist_exp.training.{name}" for name in ("build", "callbacks", "calibration")},
    **{
        f"mnist_exp.{name}": f"mnist_exp.analysis.{name}"
        for name in ("report", "insight", "attributions", "robustness", "figures", "plots")
    },
    **{
        f"mnist_exp.{name}": f"mnist_exp.records.{name}"
        for name in ("rundirs", "record", "checkpoints", "hparams", "tracking", "logs")
    },
    "mnist_exp.inference": "mnist_exp.models.inference",
    "mnist_exp.images": "mnist_exp.data.images",
}


class OldNames(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports a moved module by its old name: the module itself, under both names."""

    def find_spec(self, name, path=None, target=None):
        return importlib.util.spec_from_loader(name, self) if name in MOVED else None

    def create_module(self, spec):
        return importlib.import_module(MOVED[spec.name])

    def exec_module(self, module) -> None:
        pass  # imported already, under its new name


sys.meta_path.append(OldNames())
