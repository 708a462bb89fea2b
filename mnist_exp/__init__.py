"""mnist-exp: config-driven CNN experiments on MNIST-like handwritten digits."""

import os
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
