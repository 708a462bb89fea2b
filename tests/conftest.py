"""Shared fixtures: a small synthetic MNIST-like dataset written as real IDX files."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from mnist_exp import PROJECT_ROOT
from mnist_exp.data.idx import write_idx
from mnist_exp.data.sources import sha256_of

FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def synthetic_digits(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """28x28 uint8 images whose label sets where a bright 8x8 block sits (easy to learn), plus noise."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count, dtype=np.uint8) % 10
    rng.shuffle(labels)
    images = rng.integers(0, 60, size=(count, 28, 28), dtype=np.uint8)
    for image, label in zip(images, labels):
        row, col = 2 + 8 * (label // 4), 2 + 6 * (label % 4)
        image[row : row + 8, col : col + 8] = 255
    return images, labels


@dataclass
class SyntheticData:
    data_dir: Path  # what paths.data_dir should be
    folder: Path  # data_dir / "synthetic", holding the IDX files
    checksums: dict  # file name -> sha256
    config_dir: Path  # holds data/synthetic.yaml, for hydra.searchpath

    def overrides(self) -> list[str]:
        """Command-line overrides that train on this dataset instead of MNIST."""
        return [f"hydra.searchpath=[file://{self.config_dir}]", "data=synthetic", f"paths.data_dir={self.data_dir}"]


def write_synthetic(root: Path, train: int = 600, test: int = 200) -> SyntheticData:
    folder = root / "data" / "synthetic"
    folder.mkdir(parents=True)
    train_images, train_labels = synthetic_digits(train, seed=1)
    test_images, test_labels = synthetic_digits(test, seed=2)
    arrays = {"train_images": train_images, "train_labels": train_labels, "test_images": test_images, "test_labels": test_labels}
    for role, name in FILES.items():
        write_idx(folder / name, arrays[role])
    checksums = {name: sha256_of(folder / name) for name in FILES.values()}
    config_dir = root / "conf"
    (config_dir / "data").mkdir(parents=True)
    files_yaml = "\n".join(
        f"  {role}: {{file: {name}, sha256: {checksums[name]}}}" for role, name in FILES.items()
    )
    (config_dir / "data" / "synthetic.yaml").write_text(
        f"defaults:\n  - mnist\n  - _self_\nname: synthetic\ntrain_size: {train}\nval_size: 100\neval_batch_size: 100\n"
        f"files:\n{files_yaml}\nsources: []\n"
    )
    return SyntheticData(root / "data", folder, checksums, config_dir)


@pytest.fixture
def synthetic(tmp_path: Path) -> SyntheticData:
    return write_synthetic(tmp_path)


def run_cli(args: list[str], cwd: Path = PROJECT_ROOT, timeout: float = 300, module: str = "mnist_exp"):
    """Run `python -m mnist_exp ARGS` as a user would; returns the CompletedProcess."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HYDRA_FULL_ERROR": "0"}
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


TINY_RUN = ["trainer.max_epochs=2", "data.batch_size=32", "trainer.accelerator=cpu", "trainer.log_every_n_steps=5"]


@pytest.fixture(scope="session")
def real_mnist_run(tmp_path_factory) -> Path:
    """The README's train command on real MNIST for one epoch (fetching MNIST on first use); its run dir."""
    run_dir = tmp_path_factory.mktemp("real") / "run"
    result = subprocess.run(
        ["bash", "scripts/train.sh", "trainer.max_epochs=1", "trainer=cpu", f"hydra.run.dir={run_dir}"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir / "stdout.txt").write_text(result.stdout)
    return run_dir


@pytest.fixture(scope="session")
def synthetic_run(tmp_path_factory) -> tuple[SyntheticData, Path]:
    """A tiny training run on synthetic data; (the data, its run dir)."""
    root = tmp_path_factory.mktemp("synthetic-run")
    data = write_synthetic(root)
    run_dir = root / "run"
    result = run_cli([*data.overrides(), *TINY_RUN, f"hydra.run.dir={run_dir}"])
    assert result.returncode == 0, result.stderr[-3000:]
    return data, run_dir
