"""The run record, RUN_DIR/run.json: what a run was and where it came from, written atomically when it
starts (status `running`) and again when it ends (`ok`, `failed`, `stopped`). docs/runs.md lists its keys.

Provenance is what makes two runs comparable: the command line and its overrides (parsed with Hydra's
parser), the config group choices, the seed, the hardware and precision, the versions of Python and
the libraries that compute, the SHA-256 of the data files, and, when the project runs from a git
checkout, its commit, whether the work tree differs from it, and a digest of that difference. The
checkpoints carry the same provenance (the LightningModule saves it), so a checkpoint alone still
says which code made it.
"""

from __future__ import annotations

import hashlib
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from mnist_exp import PROJECT_ROOT
from mnist_exp.config import is_multirun, parse_overrides
from mnist_exp.errors import ConfigError
from mnist_exp.records.rundirs import write_json_atomically

RECORD = "run.json"
PACKAGES = ("mnist-exp", "torch", "pytorch-lightning", "torchmetrics", "hydra-core", "omegaconf", "optuna", "numpy")


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def versions() -> dict[str, str]:
    """Python's and each package's version; torch and torchvision as their `__version__` says, which names
    the build (`2.14.1+cu130` is a CUDA 13.0 build, `2.14.1+cpu` a CPU one; the package metadata says
    `2.14.1` for both)."""
    import torch
    import torchvision

    found = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    # str(): torch.__version__ is a TorchVersion, which a checkpoint (read with the safe unpickler) may not hold
    return {**found, "torch": str(torch.__version__), "torchvision": str(torchvision.__version__)}


def build() -> dict[str, str | None]:
    """The compute stack torch was built with and runs on: CUDA and cuDNN versions (None in a CPU build),
    and the accelerator's name (None without one)."""
    import torch

    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {
        "cuda": torch.version.cuda,
        "cudnn": str(cudnn) if cudnn else None,
        "accelerator": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def git(*args: str, root: Path | None = PROJECT_ROOT) -> str | None:
    if root is None:  # an installed wheel: no checkout to ask
        return None
    try:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.decode(errors="replace")


def git_state(root: Path | None = PROJECT_ROOT) -> dict | None:
    """The checkout's commit, whether its tracked files differ from it (`dirty`) and a SHA-256 of that
    difference (`git diff HEAD`: two runs with the same digest ran the same uncommitted code); None
    outside a git checkout (an installed wheel)."""
    commit = git("rev-parse", "HEAD", root=root)
    if commit is None:
        return None
    diff = git("diff", "HEAD", "--no-color", "--no-ext-diff", root=root) or ""
    return {
        "commit": commit.strip(),
        "dirty": bool(diff),
        "diff_sha256": hashlib.sha256(diff.encode()).hexdigest() if diff else None,
    }


def data_files(cfg) -> dict[str, str]:
    """file name -> SHA-256, as the data config pins them (the data module refuses any other content)."""
    files = cfg.get("data", {}).get("files") or {}
    return {str(spec["file"]): str(spec["sha256"]) for spec in files.values() if "file" in spec and "sha256" in spec}


def provenance(cfg, hardware: dict | None = None, precision: str | None = None) -> dict:
    """Where a run came from (see the module's docstring); plain data, so checkpoints may carry it."""
    return {
        "git": git_state(),
        "versions": versions(),
        "build": build(),
        "data_sha256": data_files(cfg),
        "hardware": hardware or {},
        "precision": precision,
        "platform": platform.platform(),
    }


def overrides_of(task: list[str]) -> list[dict[str, Any]]:
    """The command-line overrides as Hydra's parser reads them: key (with its + or ~) and value."""

    parsed = parse_overrides(task)
    return [{"key": o.get_key_element(), "value": plain(o.value()) if not o.is_delete() else None} for o in parsed]


def plain(value: Any) -> Any:
    """A value JSON can hold: numbers, strings, booleans, None, and lists and dicts of them."""
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return str(value)


class RunRecord:
    """RUN_DIR/run.json for one run: `start` writes it, `end` writes it again with the outcome."""

    def __init__(self, run_dir: Path, cfg, hydra=None):
        self.path = Path(run_dir) / RECORD
        choices = dict(hydra.runtime.choices) if hydra is not None else {}
        task = list(hydra.overrides.task) if hydra is not None else []
        self.data: dict[str, Any] = {
            "status": "running",
            "started": now(),
            "ended": None,
            "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
            "overrides": overrides_of(task),
            "choices": {k: v for k, v in choices.items() if not k.startswith("hydra/")},
            "seed": cfg.get("seed"),
            "job": {"num": hydra.job.get("num"), "sweep_dir": str(hydra.sweep.dir)}
            if hydra and is_multirun(hydra)
            else None,
            "resumed_from": cfg.get("ckpt_path"),  # a checkpoint from elsewhere this run started from
            "provenance": provenance(cfg),
            "metrics": None,
            "error": None,
        }
        previous = read_record(run_dir)
        if previous and cfg.get("ckpt_path"):  # a resumed run: the record of the run it carries on
            resumed = {"at": self.data["started"], "command": self.data["command"], "checkpoint": cfg.get("ckpt_path")}
            self.data.update(
                started=previous.get("started"),
                command=previous.get("command"),
                overrides=previous.get("overrides"),
                resumed_from=None,
            )
            self.data["resumes"] = [*previous.get("resumes", []), resumed]

    def start(self, hardware: dict, precision: str) -> dict:
        self.data["provenance"].update(hardware=hardware, precision=precision)
        write_json_atomically(self.path, self.data)
        return self.data["provenance"]

    def end(self, status: str, metrics: dict | None = None, error: str | None = None) -> None:
        self.data.update(status=status, ended=now(), metrics=metrics, error=error)
        write_json_atomically(self.path, self.data)


def read_record(run_dir: Path) -> dict | None:
    """A run's record, or None for a run made before records were written (or a damaged file)."""
    import json

    path = Path(run_dir) / RECORD
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except (OSError, ValueError):
        return None


def finished_run(run_dir: Path):
    """A finished run's record and its saved config (to reproduce it); ConfigError for anything else."""
    from omegaconf import OmegaConf

    record = read_record(run_dir)
    config_file = Path(run_dir) / ".hydra" / "config.yaml"
    if record is None or not config_file.is_file():
        raise ConfigError(f"run_dir={run_dir}: not a run dir with a run record (run.json) and .hydra/config.yaml")
    if record.get("status") != "ok" or not record.get("metrics"):
        raise ConfigError(
            f"run_dir={run_dir}: its run did not finish (status {record.get('status')}); nothing to compare"
        )
    return record, OmegaConf.load(config_file)
