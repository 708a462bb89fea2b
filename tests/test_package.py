"""A real package: a wheel built from the checkout, installed into a fresh environment, trains from an empty
directory, with its configs inside the package, its runs under that directory and its data where it is told."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from mnist_exp import PROJECT_ROOT

pytestmark = pytest.mark.slow  # builds a wheel, makes an environment, trains in it


def left_out(folder: str, names: list[str]) -> set[str]:
    """What the wheel's sources leave out: the checkout's own dirs at its top (mnist_exp/data is the package's)."""
    top = {".git", ".venv", "outputs", "data", "build", "mnist_exp.egg-info"} if Path(folder) == PROJECT_ROOT else set()
    return {name for name in names if name in top or name == "__pycache__"}


def run(command: list, **options) -> subprocess.CompletedProcess:
    result = subprocess.run([str(part) for part in command], capture_output=True, text=True, timeout=600, **options)
    assert result.returncode == 0, (command, result.stdout[-2000:], result.stderr[-3000:])
    return result


def test_a_wheel_installed_elsewhere_trains_from_an_empty_dir_and_writes_its_outputs_there(real_mnist_run, tmp_path):
    # the wheel, built from a copy of the checkout (a build writes build/ and *.egg-info beside the sources)
    source = tmp_path / "source"
    shutil.copytree(PROJECT_ROOT, source, ignore=left_out)
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", source, "-w", tmp_path])
    (wheel,) = tmp_path.glob("mnist_exp-*.whl")

    # a fresh environment: the wheel installed into it; its dependencies those of this one (on its path, through
    # a .pth file: this environment's own editable mnist_exp is not, since its .pth files are not read there)
    fresh = tmp_path / "fresh"
    run([sys.executable, "-m", "venv", "--without-pip", fresh])
    python = fresh / "bin" / "python"
    run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "-q", wheel])
    site = run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    (Path(site) / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    empty = tmp_path / "empty"
    empty.mkdir()
    imported = [python, "-c", "import mnist_exp; print(mnist_exp.__file__, mnist_exp.PROJECT_ROOT)"]
    where = run(imported, cwd=empty).stdout.split()
    assert where == [str(Path(site) / "mnist_exp" / "__init__.py"), "None"]  # the wheel's, not the checkout's

    # `mnist-exp` from an empty dir: the configs come from the package, the runs go under the dir
    env = {**os.environ, "MNIST_EXP_DATA": str(PROJECT_ROOT / "data")}  # the checkout's MNIST, as a user would share it
    tiny = ["trainer.max_epochs=1", "trainer.limit_train_batches=0.05", "trainer.limit_val_batches=0.1", "trainer=cpu"]
    trained = run([fresh / "bin" / "mnist-exp", *tiny], cwd=empty, env=env)
    (run_dir,) = (empty / "outputs").glob("*/*")
    assert f"Run dir: {run_dir}" in trained.stdout
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "ok" and metrics["test/acc"] > 0.5
    record = json.loads((run_dir / "run.json").read_text())
    assert record["provenance"]["git"] is None  # no checkout to ask: not the commit of whatever repo holds it
    assert (run_dir / ".hydra" / "config.yaml").is_file() and not (PROJECT_ROOT / "build").exists()

    # without MNIST_EXP_DATA, an installed wheel keeps its data in the user's cache dir
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    env.pop("MNIST_EXP_DATA", None)
    shown = run([python, "-c", "import mnist_exp; print(mnist_exp.data_home())"], cwd=empty, env=env)
    assert shown.stdout.strip() == str(tmp_path / "cache" / "mnist-exp")
