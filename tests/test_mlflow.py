"""MLflow 3: a run appears in a real tracking server with its params, metrics, provenance tags and the model
it tested as a LoggedModel that loads back through models:/ and predicts what the checkpoint predicts;
several loggers at once; a local SQLite store when no server is set."""

from __future__ import annotations

import json
import subprocess

import pytest

from mnist_exp import PROJECT_ROOT
from tests.helpers import TINY_RUN, load_events, run_cli, synthetic_digits
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
        run_metrics = json.loads((run_dir / "metrics.json").read_text())  # the figures the run itself reports
        assert_the_logged_model_is_the_tested_one(url, run["info"]["run_id"], run_metrics)
    params = {p["key"]: p["value"] for p in run["data"]["params"]}
    metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
    tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
    assert params["model.channels"] == "8" and params["optimizer"] == "adam" and params["seed"] == "42"
    assert {"test/acc", "val/acc", "train/loss"} <= metrics.keys()
    assert metrics["test/acc"] == pytest.approx(run_metrics["test/acc"]) and metrics["test/loss"] == pytest.approx(
        run_metrics["test/loss"]
    )
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True).stdout.strip()
    assert tags["mnist_exp.git.commit"] == head and tags["mnist_exp.versions.torch"]
    assert tags["mnist_exp.run_dir"] == str(run_dir)
    assert "val/acc" in load_events(run_dir).Tags()["scalars"]  # and TensorBoard beside it (logger=many)


def assert_the_logged_model_is_the_tested_one(tracking_uri: str, run_id: str, run_metrics: dict) -> None:
    """The run's LoggedModel: named in metrics.json, linked to the run and its test metrics, and, loaded
    through models:/, giving the probabilities the tested checkpoint gives."""
    import mlflow
    import numpy as np
    import torch

    from mnist_exp.models.inference import load_classifier

    (uri,) = run_metrics["mlflow_models"]
    mlflow.set_tracking_uri(tracking_uri)
    logged = mlflow.get_logged_model(uri.removeprefix("models:/"))
    assert logged.source_run_id == run_id
    linked = {metric.key: metric.value for metric in logged.metrics}
    assert linked["test/acc"] == pytest.approx(run_metrics["test/acc"])
    model = mlflow.pytorch.load_model(uri)
    images, _ = synthetic_digits(50, seed=9)
    expected = load_classifier(run_metrics["tested"]).predict_proba(torch.from_numpy(images.copy())).numpy()
    with torch.no_grad():
        got = model(torch.from_numpy(images[:, None].astype(np.float32))).numpy()  # raw pixels, any batch size
    assert got.shape == (50, 10) and np.abs(got - expected).max() <= 1e-4


def test_without_a_server_mlflow_keeps_its_runs_in_sqlite_under_outputs(synthetic, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    outputs, run_dir = tmp_path / "outputs", tmp_path / "run"
    args = [*synthetic.overrides(), *TINY_RUN, "logger=mlflow", f"hydra.run.dir={run_dir}", f"paths.log_dir={outputs}"]
    result = run_cli(args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    run_metrics = json.loads((run_dir / "metrics.json").read_text())
    assert f"MLflow model: {run_metrics['mlflow_models'][0]}" in result.stdout
    assert (outputs / "mlflow.db").is_file() and any((outputs / "mlartifacts").rglob("*.pt2"))
    assert not (tmp_path / "mlruns").exists()  # MLflow's own default, beside the working dir, left alone
    import mlflow

    tracking_uri = f"sqlite:///{outputs / 'mlflow.db'}"
    (run,) = mlflow.MlflowClient(tracking_uri).search_runs(
        [mlflow.MlflowClient(tracking_uri).get_experiment_by_name("mnist-exp").experiment_id]
    )
    assert run.data.metrics["test/acc"] == pytest.approx(run_metrics["test/acc"])
    assert_the_logged_model_is_the_tested_one(tracking_uri, run.info.run_id, run_metrics)


def test_each_trial_of_a_search_logs_its_model_and_the_best_is_found_by_its_metric(synthetic, tmp_path, monkeypatch):
    """An Optuna search with logger=mlflow: each trial's tested model is a LoggedModel with val/acc_best (the
    search's objective) linked, so MLflow orders them as the search does and the best trial's model loads."""
    import mlflow

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    outputs, sweep = tmp_path / "outputs", tmp_path / "sweep"
    search = ["hparams_search=optuna", "hydra.sweeper.n_trials=2", "hydra/sweeper/pruner=none", "logger=mlflow"]
    args = [*synthetic.overrides(), *TINY_RUN, "trainer.max_epochs=1", *search, f"paths.log_dir={outputs}"]
    result = run_cli([*args, f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    trials = [json.loads(path.read_text()) for path in sweep.glob("*/metrics.json")]
    assert len(trials) == 2 and all(len(metrics["mlflow_models"]) == 1 for metrics in trials)
    mlflow.set_tracking_uri(f"sqlite:///{outputs / 'mlflow.db'}")
    experiment = mlflow.get_experiment_by_name("mnist-exp")
    (best,) = mlflow.search_logged_models(
        experiment_ids=[experiment.experiment_id],
        order_by=[{"field_name": "metrics.val/acc_best", "ascending": False}],
        max_results=1,
        output_format="list",
    )
    best_trial = next(metrics for metrics in trials if metrics["mlflow_models"] == [f"models:/{best.model_id}"])
    assert best_trial["val/acc_best"] == max(metrics["val/acc_best"] for metrics in trials)
    assert_the_logged_model_is_the_tested_one(mlflow.get_tracking_uri(), best.source_run_id, best_trial)
