"""MLflow: a run appears in a real tracking server with its params, metrics and provenance tags; several
loggers at once; a local store when no server is set."""

from __future__ import annotations

import json
import subprocess

import pytest

from mnist_exp import PROJECT_ROOT
from tests.helpers import TINY_RUN, compose, load_events, run_cli
from tests.mlflow_server import call, mlflow_server

pytestmark = pytest.mark.slow  # a real server, real runs


def test_a_run_appears_in_a_real_mlflow_server_with_params_metrics_and_its_commit(synthetic, tmp_path):
    with mlflow_server(tmp_path) as url:
        run_dir = tmp_path / "run"
        args = [
            *synthetic.overrides(),
            *TINY_RUN,
            "logger=many",
            "model.channels=8",
            f"hydra.run.dir={run_dir}",
            f"paths.log_dir={tmp_path / 'outputs'}",
        ]
        result = run_cli(args, env={"MLFLOW_TRACKING_URI": url})
        assert result.returncode == 0, result.stderr[-3000:]
        experiment = call(url, "/api/2.0/mlflow/experiments/get-by-name?experiment_name=mnist-exp")["experiment"]
        (run,) = call(url, "/api/2.0/mlflow/runs/search", {"experiment_ids": [experiment["experiment_id"]]})["runs"]
    params = {p["key"]: p["value"] for p in run["data"]["params"]}
    metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
    tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
    assert params["model.channels"] == "8" and params["optimizer"] == "adam" and params["seed"] == "42"
    assert {"test/acc", "val/acc", "train/loss"} <= metrics.keys()
    run_metrics = json.loads((run_dir / "metrics.json").read_text())  # the figures the run itself reports
    assert metrics["test/acc"] == pytest.approx(run_metrics["test/acc"]) and metrics["test/loss"] == pytest.approx(
        run_metrics["test/loss"]
    )
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True).stdout.strip()
    assert tags["mnist_exp.git.commit"] == head and tags["mnist_exp.versions.torch"]
    assert tags["mnist_exp.run_dir"] == str(run_dir)
    assert "val/acc" in load_events(run_dir).Tags()["scalars"]  # and TensorBoard beside it (logger=many)


def test_without_a_server_mlflow_keeps_its_runs_under_outputs(tmp_path, monkeypatch):
    from hydra.utils import instantiate

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = compose(["logger=mlflow", f"paths.log_dir={tmp_path / 'outputs'}"], run_dir=str(tmp_path / "run"))
    logger = instantiate(cfg.logger.mlflow)
    logger.log_metrics({"x": 1.0}, step=0)
    logger.finalize("success")
    assert list((tmp_path / "outputs" / "mlruns").iterdir())  # MLflow's local store, under outputs/
