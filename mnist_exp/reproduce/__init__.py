"""Reproduce a finished run: `mnist-exp-reproduce RUN_DIR`.

The run's own saved config (RUN_DIR/.hydra/config.yaml, whatever today's defaults say) is trained again
into RUN_DIR-reproduced; then the new metrics are compared with the original's (its run.json): equal to
the last bit when the hardware, precision and library versions are the same (a CPU run with the same
seed and threads is deterministic), within `tolerance` for the accuracies otherwise. What differs in
provenance (commit, uncommitted diff, versions, hardware, precision) is printed either way. Exit
status 0 when the metrics match, 1 when they do not.
"""

from __future__ import annotations

import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from mnist_exp.config import command
from mnist_exp.errors import FailedItemsError
from mnist_exp.records.record import finished_run, read_record
from mnist_exp.records.rundirs import write_atomically
from mnist_exp.training.recipe import run_training

COMPARED = ("test/acc", "test/loss", "val/acc_best", "epochs")
ACCURACIES = ("test/acc", "val/acc_best")
PROVENANCE = (
    ("git", "commit"),
    ("git", "dirty"),
    ("git", "diff_sha256"),
    ("precision",),
    ("hardware", "cpu"),
    ("hardware", "cpu_capability"),
    ("hardware", "gpu"),
    ("hardware", "cpu_threads"),
    ("build", "cuda"),
    ("build", "cudnn"),
    ("build", "accelerator"),
)
BUILD = ("versions.torch", "versions.torchvision", "build.")


def provenance_differences(old: dict, new: dict) -> list[str]:
    lines = []
    for path in PROVENANCE:
        a, b = old, new
        for key in path:
            a, b = (a or {}).get(key), (b or {}).get(key)
        if a != b:
            lines.append(f"{'.'.join(path)}: {a} -> {b}")
    for package in sorted(set(old.get("versions", {})) | set(new.get("versions", {}))):
        a, b = old.get("versions", {}).get(package), new.get("versions", {}).get(package)
        if a != b:
            lines.append(f"versions.{package}: {a} -> {b}")
    return lines


def compare(old: dict, new: dict, exact: bool, tolerance: float) -> list[str]:
    """The metrics that do not match, `KEY: OLD -> NEW`: every one equal when `exact`; otherwise the epochs
    equal and the accuracies within `tolerance` (the loss, which moves with them, is not compared)."""
    off = []
    for key in COMPARED:
        a, b = old.get(key), new.get(key)
        if exact:
            matches = a == b
        elif key in ACCURACIES:
            matches = abs(a - b) <= tolerance
        else:
            matches = key != "epochs" or a == b
        if not matches:
            off.append(f"{key}: {a} -> {b}")
    return off


def reproduce(cfg: DictConfig) -> dict:
    run_dir = Path(cfg.run_dir).resolve()
    record, saved = finished_run(run_dir)
    with open_dict(saved):
        saved.ckpt_path = None  # from the start, whatever the original resumed from
    print(
        f"Reproducing {run_dir} (commit {((record['provenance'].get('git') or {}).get('commit') or 'unknown')[:12]})",
        file=sys.stderr,
    )
    # The new run dir's config is the training config it runs (what a resume or another reproduce reads),
    # not this command's own.
    config_file = Path(cfg.paths.output_dir) / ".hydra" / "config.yaml"
    write_atomically(config_file, lambda tmp: OmegaConf.save(saved, tmp))
    noted = {"reproduces": str(run_dir), "overrides": record.get("overrides"), "choices": record.get("choices")}
    metrics = run_training(saved, **noted)
    new = read_record(Path(cfg.paths.output_dir))
    differences = provenance_differences(record["provenance"], new["provenance"])
    exact = not differences  # the same code, hardware, precision and versions: equal to the last bit
    off = compare(record["metrics"], metrics, exact, cfg.tolerance)
    for line in differences or ["provenance: the same commit, diff, versions, hardware and precision"]:
        print(line)
    if any(line.startswith(BUILD) for line in differences):
        print(
            "torch's build differs from the original run's (above): other kernels, the last bits may differ",
            file=sys.stderr,
        )
    if off:
        how = "bit for bit" if exact else f"within tolerance={cfg.tolerance}"
        raise FailedItemsError(f"does not match {run_dir} {how}: {'; '.join(off)}")
    equal = not compare(record["metrics"], metrics, True, 0.0)  # bit for bit, even where only a tolerance was owed
    print(
        f"match: {', '.join(f'{k} {metrics[k]}' for k in COMPARED)} "
        f"({'bit for bit' if equal else f'within tolerance={cfg.tolerance}'}); new run in {cfg.paths.output_dir}"
    )
    return metrics


@command("reproduce")
def main(cfg: DictConfig) -> None:
    reproduce(cfg)
