"""Shared fixtures: a small synthetic MNIST-like dataset written as real IDX files."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mnist_exp import PROJECT_ROOT
from tests.helpers import TINY_RUN, SyntheticData, run_cli, write_synthetic


def run_dirs_under(outputs: Path) -> set[Path]:
    return {p for pattern in ("*/*", "*/*/*") for p in outputs.glob(pattern) if p.is_dir()}


@pytest.fixture(scope="session", autouse=True)
def nothing_written_into_the_projects_outputs():
    """Every test writes into its own temp dirs: the project's outputs/ (the user's runs) gains nothing."""
    before = run_dirs_under(PROJECT_ROOT / "outputs")
    yield
    added = sorted(str(p) for p in run_dirs_under(PROJECT_ROOT / "outputs") - before)
    assert not added, f"tests made run dirs in the project's outputs/: {added[:5]}"


@pytest.fixture
def synthetic(tmp_path: Path) -> SyntheticData:
    return write_synthetic(tmp_path)


@pytest.fixture(scope="session")
def real_mnist_run(tmp_path_factory) -> Path:
    """The README's train command, the default recipe on real MNIST (fetching MNIST on first use); its run dir."""
    run_dir = tmp_path_factory.mktemp("real") / "run"
    result = subprocess.run(
        ["bash", "scripts/train.sh", "trainer=cpu", f"hydra.run.dir={run_dir}"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
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
