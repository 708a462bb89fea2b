"""Multiruns: readable job dirs, summary tables, failure isolation, joblib, Optuna and submitit."""

import collections
import csv
import json

import pytest
import yaml
from hydra._internal.config_loader_impl import ConfigLoaderImpl

from mnist_exp.summarize import main as summarize_main
from tests.helpers import run_cli

pytestmark = pytest.mark.slow

SWEEP_RUN = [
    "trainer.max_epochs=1",
    "data.batch_size=32",
    "trainer.accelerator=cpu",
    "trainer.log_every_n_steps=5",
    "callbacks.test_report.mistakes=4",
]


def read_summary(sweep_dir):
    with open(sweep_dir / "summary.csv") as f:
        return list(csv.DictReader(f))


def test_grid_sweep_names_jobs_by_overrides_and_summarizes_them(synthetic, tmp_path, monkeypatch):
    composed = collections.Counter()  # each job's config, composed by Hydra's config loader
    load_sweep_config = ConfigLoaderImpl.load_sweep_config

    def counted(loader, master_config, sweep_overrides):
        composed[tuple(sweep_overrides)] += 1
        return load_sweep_config(loader, master_config, sweep_overrides)

    monkeypatch.setattr(ConfigLoaderImpl, "load_sweep_config", counted)
    sweep = tmp_path / "sweep"
    result = run_cli(
        [
            "-m",
            *synthetic.overrides(),
            *SWEEP_RUN,
            "model.channels=4,8",
            "optimizer.lr=0.001,0.003",
            f"hydra.sweep.dir={sweep}",
        ]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = read_summary(sweep)
    assert len(rows) == 4 and {r["status"] for r in rows} == {"ok"}
    assert len(composed) == 4 and set(composed.values()) == {1}, composed  # checked, then launched: composed once
    job_dirs = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert job_dirs[0].startswith("0_") and {"model.channels=4", "optimizer.lr=0.001"} <= set(
        job_dirs[0][2:].split(",")
    )
    assert job_dirs[3].startswith("3_") and {"model.channels=8", "optimizer.lr=0.003"} <= set(
        job_dirs[3][2:].split(",")
    )
    for row in rows:
        metrics = json.loads((sweep / row["run_dir"] / "metrics.json").read_text())
        assert float(row["val_acc_best"]) == pytest.approx(metrics["val/acc_best"], abs=1e-6)
        assert float(row["test_acc"]) == pytest.approx(metrics["test/acc"], abs=1e-6)
        assert row["overrides"].split(",") == yaml.safe_load(
            (sweep / row["run_dir"] / ".hydra/overrides.yaml").read_text()
        )
    values = [float(r["val_acc_best"]) for r in rows]
    assert values == sorted(values, reverse=True)
    assert (sweep / "summary.md").read_text().startswith("| job | overrides | status |")
    assert (sweep / "summary.png").stat().st_size > 1000
    # the sweep's summary table, printed at its end (the column's header, not a model summary's metric name)
    assert f"sweep {sweep} (4 jobs; all with " in result.stdout and "val best" in result.stdout
    # each printed row names what tells its job apart, whole (the full override list, cut, read alike)
    printed = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()[:1].isdigit()}
    for row in rows:
        swept = [o for o in row["overrides"].split(",") if o.startswith(("model.channels=", "optimizer.lr="))]
        assert " ".join(swept) in printed[row["job"]], printed

    # summarize rebuilds exactly the same table from the dir
    before = (sweep / "summary.csv").read_text(), (sweep / "summary.md").read_text()
    (sweep / "summary.csv").unlink()
    assert summarize_main([str(sweep)]) == 0
    assert ((sweep / "summary.csv").read_text(), (sweep / "summary.md").read_text()) == before


def test_a_failing_job_is_recorded_and_the_others_finish(synthetic, tmp_path):
    sweep = tmp_path / "sweep"
    result = run_cli(["-m", *synthetic.overrides(), *SWEEP_RUN, "model.kernel_size=3,4", f"hydra.sweep.dir={sweep}"])
    assert result.returncode == 1  # the exit code says a job failed
    rows = read_summary(sweep)
    statuses = {r["overrides"].split("model.kernel_size=")[1].split(",")[0]: r["status"] for r in rows}
    assert statuses["3"] == "ok"
    assert statuses["4"].startswith(
        "failed: ConfigError: model.kernel_size must be an odd integer >= 1 (padding keeps the size), got 4"
    )
    assert "1 of 2 jobs failed" in result.stderr


def the_one_sweep_dir(log_dir):
    """The default sweep dir (claimed once in the launching process): every job of the sweep is in it."""
    (sweep,) = log_dir.glob("multirun/*/*")
    return sweep


def test_joblib_runs_two_jobs_in_parallel_with_a_thread_each(synthetic, tmp_path):
    result = run_cli(
        [
            "-m",
            *synthetic.overrides(),
            *SWEEP_RUN,
            "seed=1,2",
            "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=2",
            f"paths.log_dir={tmp_path}",
        ]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = the_one_sweep_dir(tmp_path)
    rows = read_summary(sweep)
    assert len(rows) == 2 and {r["status"] for r in rows} == {"ok"}
    assert [p for p in sweep.iterdir() if p.is_dir() and not p.name.startswith(".")] and len(
        list(sweep.glob("*/metrics.json"))
    ) == 2


def test_optuna_search_returns_the_best_value_the_summary_shows(synthetic, tmp_path):
    sweep = tmp_path / "sweep"
    storage = tmp_path / "study.db"
    result = run_cli(
        [
            *synthetic.overrides(),
            *SWEEP_RUN,
            "hparams_search=optuna",
            "hydra.sweeper.n_trials=3",
            f"hydra.sweeper.storage=sqlite:///{storage}",
            "scheduler=none",  # fixed keys leave the search space
            f"hydra.sweep.dir={sweep}",
        ]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    rows = read_summary(sweep)
    assert len(rows) == 3
    assert float(rows[0]["val_acc_best"]) == pytest.approx(best["best_value"], abs=1e-6)
    assert storage.exists()


def test_a_failed_optuna_trial_is_recorded_and_the_search_goes_on(synthetic, tmp_path):
    # One-cycle cannot be built for the 4 steps of batch 128 on this small set: with seed 0 the sampler
    # draws batch 64 (ok) for the first trial and 128 (failed) for the other two.
    sweep = tmp_path / "sweep"
    searched = [arg for arg in SWEEP_RUN if not arg.startswith("data.batch_size=")]  # a fixed key leaves the search
    result = run_cli(
        [
            *synthetic.overrides(),
            *searched,
            "hparams_search=optuna",
            "hydra.sweeper.n_trials=3",
            "scheduler=onecycle",
            "model.channels=4",
            "seed=0",
            f"hydra.sweep.dir={sweep}",
        ]
    )
    assert result.returncode == 1  # the search finished; a trial failed
    rows = read_summary(sweep)
    statuses = [row["status"] for row in rows]
    assert statuses.count("ok") == 1 and len(rows) == 3
    assert all(s.startswith("failed: ConfigError: scheduler OneCycleLR cannot be built") for s in statuses if s != "ok")
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert float(rows[0]["val_acc_best"]) == pytest.approx(best["best_value"], abs=1e-6)
    assert len(list(sweep.glob("*/failure.json"))) == 2


def test_submitit_local_runs_a_two_job_sweep(synthetic, tmp_path):
    result = run_cli(
        [
            "-m",
            *synthetic.overrides(),
            *SWEEP_RUN,
            "seed=1,2",
            "hydra/launcher=submitit_local",
            "hydra.launcher.timeout_min=10",
            f"paths.log_dir={tmp_path}",
        ]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = the_one_sweep_dir(tmp_path)
    rows = read_summary(sweep)
    assert len(rows) == 2 and {r["status"] for r in rows} == {"ok"}


def test_two_sweeps_started_in_the_same_second_get_different_dirs(synthetic, tmp_path):
    import subprocess
    import sys

    from mnist_exp import PROJECT_ROOT

    command = [
        sys.executable,
        "-m",
        "mnist_exp",
        "-m",
        *synthetic.overrides(),
        *SWEEP_RUN,
        "seed=1",
        f"paths.log_dir={tmp_path}",
    ]
    first = subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    second = subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert first.wait(timeout=300) == 0 and second.wait(timeout=300) == 0
    sweeps = sorted(p.parent for p in tmp_path.glob("multirun/*/*/summary.csv"))
    assert len(sweeps) == 2 and len(set(sweeps)) == 2


def test_slurm_launcher_config_composes_with_the_usual_knobs():
    result = run_cli(
        ["hydra/launcher=slurm", "hydra.launcher.partition=gpu", "hydra.launcher.gpus_per_node=4", "--cfg", "hydra"]
    )
    assert result.returncode == 0, result.stderr[-2000:]
    launcher = yaml.safe_load(result.stdout)["hydra"]["launcher"]
    assert launcher["_target_"].endswith("SlurmLauncher")
    assert launcher["partition"] == "gpu" and launcher["gpus_per_node"] == 4 and launcher["timeout_min"] == 60
