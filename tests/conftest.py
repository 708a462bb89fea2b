"""Shared fixtures: a small synthetic MNIST-like dataset written as real IDX files."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from mnist_exp import PROJECT_ROOT
from tests.helpers import TINY_RUN, SyntheticData, run_cli, write_synthetic

# Every process the suite starts inherits this variable, and so does whatever those start in turn (a
# server's workers, orphaned or not): at the end, none may be left running.
SESSION_MARK = "MNIST_EXP_TEST_SESSION"


@pytest.fixture(scope="session", autouse=True)
def no_process_left_running():
    """The suite ends with none of its processes running: every server a test started stopped with all it started.
    Set up first, so it checks after every other fixture has stopped its servers."""
    mark = f"{SESSION_MARK}={uuid.uuid4().hex}"
    os.environ[SESSION_MARK] = mark.split("=", 1)[1]
    yield
    if "joblib.externals.loky" in sys.modules:  # joblib sweeps run in this process keep loky's workers for reuse
        from joblib.externals.loky import get_reusable_executor

        get_reusable_executor().shutdown(wait=True)
    deadline = time.monotonic() + 30
    while (left := processes_marked(mark)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not left, f"processes the tests started are still running: {left[:5]}"


def processes_marked(mark: str) -> list[str]:
    """'PID: command line' of each live process (not this one) whose environment holds `mark`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if mark.encode() not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":  # ended, not yet reaped
                continue
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except OSError:  # ended meanwhile, or not ours to read
            continue
        if parent == os.getpid() and "resource_tracker" in command:
            continue  # multiprocessing's tracker for this process: it ends when this process closes its pipe
        found.append(f"{entry.name}: {command.strip()[:200]}")
    return found


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
    (root / "stdout.txt").write_text(result.stdout)  # beside the run dir: what the command printed
    return data, run_dir
