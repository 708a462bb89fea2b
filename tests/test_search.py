"""The Optuna sweeper on its own: search space syntax, pruning from inside the jobs (in the sweep's process
and in joblib's), several objectives, and what a study reports (mnist_exp/study/)."""

from __future__ import annotations

import json

import optuna
import pytest
import yaml
from omegaconf import OmegaConf
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from mnist_exp.errors import ConfigError
from mnist_exp.study.report import best_lines, counts, results, study_rows
from mnist_exp.study.space import search_space, trial_overrides
from mnist_exp.study.storage import load_study
from tests.helpers import read_csv, run_cli
from tests.test_study import make_sweeper

# Three short epochs on the synthetic digits: enough for a pruner to stop a trial after the first.
TRIAL = [
    "trainer.max_epochs=3",
    "data.batch_size=32",
    "trainer.accelerator=cpu",
    "trainer.log_every_n_steps=5",
    "callbacks.test_report.mistakes=4",
]
# A pruner that stops every trial after its first epoch (no accuracy is above 1.1): pruning, deterministic.
PRUNE_ALL = [
    "hydra/sweeper/pruner=none",
    "hydra.sweeper.pruner._target_=optuna.pruners.ThresholdPruner",
    "+hydra.sweeper.pruner.lower=1.1",
]


def test_the_search_space_reads_hydra_sweep_syntax():
    params = {
        "optimizer.lr": "tag(log, interval(0.0003, 0.01))",
        "model.channels": "choice(8, 16, 32)",
        "model.dropout": "interval(0.0, 0.5)",
        "trainer.max_epochs": "range(2, 8, 2)",
        "model.kernel_size": "int(interval(3, 7))",
        "scheduler": "choice(none, cosine)",
    }
    space, fixed = search_space(params, ["scheduler=none", "data.batch_size=64,128", "+foo=[1,2]"])
    assert space["optimizer.lr"] == FloatDistribution(0.0003, 0.01, log=True)
    assert space["model.channels"] == CategoricalDistribution([8, 16, 32])
    assert space["model.dropout"] == FloatDistribution(0.0, 0.5)
    assert space["trainer.max_epochs"] == IntDistribution(2, 6, step=2)  # Hydra's range stops before 8
    assert space["model.kernel_size"] == IntDistribution(3, 7)
    assert space["data.batch_size"] == CategoricalDistribution([64, 128])  # a sweep on the command line joins
    assert "scheduler" not in space and fixed == ["scheduler=none", "+foo=[1,2]"]  # held fixed, as written
    assert trial_overrides({"model.channels": 16}, fixed) == ["model.channels=16", "scheduler=none", "+foo=[1,2]"]
    with pytest.raises(ConfigError, match=r"model.channels=choice\(\[8\],\[16\]\): Optuna chooses among"):
        search_space({}, ["model.channels=choice([8],[16])"])


def test_several_objectives_take_one_direction_each_and_no_pruner():
    with pytest.raises(ConfigError, match="2 metrics and hydra.sweeper.direction 1"):
        make_sweeper(objectives=["val/acc_best", "fit_seconds"])
    with pytest.raises(ConfigError, match="with 2 objectives use hydra/sweeper/pruner=none"):
        make_sweeper(objectives=["val/acc_best", "fit_seconds"], direction=["maximize", "minimize"])


@pytest.mark.filterwarnings("ignore:.*set_metric_names is experimental")
def test_a_study_reports_its_counts_and_its_best_or_its_pareto_front():
    study = optuna.create_study(study_name="one", direction="maximize")
    for value in (0.9, 0.95):
        study.add_trial(optuna.trial.create_trial(value=value, params={}, distributions={}))
    study.add_trial(optuna.trial.create_trial(state=TrialState.PRUNED, intermediate_values={1: 0.5}))
    study.add_trial(optuna.trial.create_trial(state=TrialState.FAIL))
    assert counts(study) == {"complete": 2, "pruned": 1, "fail": 1, "running": 0}
    assert [(r["trial"], r["state"]) for r in study_rows(study)] == [
        (1, "complete"),
        (0, "complete"),
        (2, "pruned at epoch 1"),
        (3, "fail"),
    ]
    assert best_lines(study)[0] == "Study 'one': 2 complete, 1 pruned, 1 fail, 0 running"
    assert results(study, "memory")["best_value"] == 0.95

    pareto = optuna.create_study(study_name="two", directions=["maximize", "minimize"])
    pareto.set_metric_names(["val/acc_best", "fit_seconds"])
    for values in ([0.9, 10.0], [0.95, 20.0], [0.85, 30.0]):  # the last is beaten on both by the first
        pareto.add_trial(optuna.trial.create_trial(values=values))
    front = results(pareto, "memory")["pareto_front"]
    assert [t["trial"] for t in front] == [0, 1] and front[1]["values"] == [0.95, 20.0]
    assert "Pareto front (val/acc_best / fit_seconds), 2 trials:" in best_lines(pareto)


def pruned_sweep(synthetic, sweep, *extra):
    return run_cli(
        [
            *synthetic.overrides(),
            *TRIAL,
            *PRUNE_ALL,
            "hparams_search=optuna",
            "hydra.sweeper.n_trials=2",
            f"hydra.sweep.dir={sweep}",
            *extra,
        ]
    )


def assert_pruned_after_one_epoch(sweep, trials: int):
    study = load_study(str(sweep / "optuna.journal"), "mnist-exp")  # no storage given: the sweep dir's journal
    assert [t.state for t in study.get_trials()] == [TrialState.PRUNED] * trials
    assert all(list(t.intermediate_values) == [1] for t in study.get_trials())  # val/acc after epoch 1
    for run_dir in (p for p in sweep.iterdir() if (p / "run.json").is_file()):
        record, metrics = (
            json.loads((run_dir / "run.json").read_text()),
            json.loads((run_dir / "metrics.json").read_text()),
        )
        assert record["status"] == "pruned" and metrics["pruned_at_epoch"] == 1 and metrics["epochs"] == 1
        assert "test/acc" not in metrics and not (run_dir / "test_report.json").exists()  # not tested
        tensorboard_params = yaml.safe_load(next(run_dir.rglob("hparams.yaml")).read_text())
        assert tensorboard_params["status"] == "pruned"
    rows = read_csv(sweep / "summary.csv")
    assert [r["status"] for r in rows] == ["pruned at epoch 1"] * trials and all(r["test_acc"] == "" for r in rows)
    assert yaml.safe_load((sweep / "optimization_results.yaml").read_text())["trials"]["pruned"] == trials


@pytest.mark.slow
def test_a_trial_the_pruner_stops_ends_early_as_pruned_everywhere(synthetic, tmp_path):
    sweep = tmp_path / "sweep"
    result = pruned_sweep(synthetic, sweep)
    assert result.returncode == 0, result.stderr[-3000:]  # a pruned trial is not a failed one
    assert_pruned_after_one_epoch(sweep, trials=2)
    assert "trial 1 pruned after epoch 1" in result.stderr + result.stdout
    study = load_study(str(sweep / "optuna.journal"), "mnist-exp")
    assert {t.user_attrs["mnist_exp:run_dir"] for t in study.get_trials()} == {
        str(p) for p in sweep.iterdir() if (p / "run.json").is_file()
    }


@pytest.mark.slow
def test_jobs_in_other_processes_find_their_trial_and_are_pruned(synthetic, tmp_path):
    sweep = tmp_path / "sweep"
    joblib = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.sweeper.n_jobs=2"]
    result = pruned_sweep(synthetic, sweep, *joblib)
    assert result.returncode == 0, result.stderr[-3000:]
    assert_pruned_after_one_epoch(sweep, trials=2)


@pytest.mark.slow
def test_a_search_on_two_objectives_keeps_the_pareto_front(synthetic, tmp_path):
    sweep = tmp_path / "sweep"
    result = run_cli(
        [
            *synthetic.overrides(),
            *TRIAL,
            "trainer.max_epochs=1",
            "hparams_search=optuna_pareto",
            "hydra.sweeper.n_trials=3",
            f"hydra.sweep.dir={sweep}",
        ]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    saved = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert saved["metric_names"] == ["val/acc_best", "fit_seconds"] and saved["trials"]["complete"] == 3
    assert saved["pareto_front"] and all(len(t["values"]) == 2 for t in saved["pareto_front"])

    summary = run_cli(
        ["--storage", str(sweep / "optuna.journal"), "--study", "mnist-exp-pareto"],
        module="mnist_exp.summarize",
        env={"COLUMNS": "200"},
    )
    assert summary.returncode == 0, summary.stderr
    assert "3 complete, 0 pruned, 0 fail, 0 running" in summary.stdout
    assert "Pareto front (val/acc_best / fit_seconds)" in summary.stdout
    assert OmegaConf.load(sweep / "multirun.yaml").hydra.sweeper.pruner._target_ == "optuna.pruners.NopPruner"
