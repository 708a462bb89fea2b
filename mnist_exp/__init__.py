"""mnist-exp: config-driven CNN experiments on MNIST-like handwritten digits."""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = PROJECT_ROOT / "conf"
