"""The table of all runs: status of each, sort and filter by config, csv and markdown out."""

import json
import os
import re
import subprocess
import sys

import pytest

from mnist_exp.errors import ConfigError
from mnist_exp.summarize import collect
from mnist_exp.summarize import main as summarize_main
from tests.helpers import HOLD_LOCK, fake_run, outputs, read_csv


def test_every_run_under_a_dir_in_one_table_with_its_status(tmp_path, capsys):
    out = outputs(tmp_path)
    assert summarize_main([str(out)]) == 0
    rows = read_csv(out / "runs.csv")
    assert [(r["run"], r["status"]) for r in rows] == [
        ("multirun/2026-11-28/11-00-00/0_model.channels=32", "ok"),  # best val accuracy first
        ("2026-11-28/10-00-00", "ok"),
        ("2026-11-28/12-00-00", "stopped, resumable"),
        ("multirun/2026-11-28/11-00-00/1_model.channels=64", "failed: ConfigError: bad"),
    ]  # evaluate's dir is not a training run
    assert (out / "runs.md").read_text().startswith("| started | run | overrides | status |")
    assert "runs under" in capsys.readouterr().out


def test_sort_and_filter_by_group_option_and_config_value(tmp_path, capsys):
    out = outputs(tmp_path)
    assert summarize_main([str(out), "--sort", "test_acc"]) == 0
    assert [r["test_acc"] for r in read_csv(out / "runs.csv")][:2] == ["0.96", "0.95"]
    assert summarize_main([str(out), "--where", "optimizer=sgd"]) == 0
    assert {r["run"].split("/")[-1] for r in read_csv(out / "runs.csv")} == {
        "0_model.channels=32",
        "1_model.channels=64",
    }
    assert summarize_main([str(out), "--where", "optimizer=sgd", "--where", "model.channels=32"]) == 0
    assert [r["status"] for r in read_csv(out / "runs.csv")] == ["ok"]
    for args, error in [
        (["--where", "optimizer=rmsprop"], "no runs (dirs with .hydra/overrides.yaml) found that match"),
        (["--sort", "nonsense"], "--sort nonsense: not a column; choose from started, run"),
    ]:
        with pytest.raises(ConfigError, match=re.escape(error)):  # the front door says it in one line
            summarize_main([str(out), *args])


def test_a_sweep_job_still_going_is_running_and_a_killed_one_is_stopped(tmp_path):
    jobs = [
        fake_run(tmp_path / f"{n}_seed={n}", [f"seed={n}"], {}, {}, metrics=m, last_ckpt=n == 2)
        for n, m in ((0, {"val/acc_best": 0.9, "test/acc": 0.91}), (1, None), (2, None))
    ]
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(jobs[1])], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline() == "held\n"
        rows = collect(tmp_path)
        assert [(r["job"], r["status"]) for r in rows] == [(0, "ok"), (1, "running"), (2, "stopped, resumable")]
    finally:
        holder.kill()
        holder.wait()
    assert [r["status"] for r in collect(tmp_path)][1] == "stopped"
    os.utime(jobs[0] / "metrics.json", (1, 1))
    (jobs[0] / "failure.json").write_text(json.dumps({"error": "RuntimeError: after the metrics"}))
    statuses = {r["job"]: r["status"] for r in collect(tmp_path)}
    assert statuses[0] == "failed: RuntimeError: after the metrics"  # a job that failed after its metrics failed


def test_where_compares_values_as_values_and_names_an_unknown_key(tmp_path, capsys):
    out = tmp_path / "outputs"
    for name, lr, epochs in (("a", 0.001, 5), ("b", 0.003, 5), ("c", 0.001, 2)):
        config = {"optimizer": {"lr": lr}, "trainer": {"max_epochs": epochs, "limit_train_batches": 1.0}}
        fake_run(
            out / "2026-11-28" / name,
            [f"optimizer.lr={lr}"],
            {"optimizer": "adam"},
            config,
            {"val/acc_best": 0.99, "test/acc": 0.99},
        )
    assert summarize_main([str(out), "--where", "optimizer.lr=1e-3"]) == 0
    assert sorted(r["run"] for r in read_csv(out / "runs.csv")) == ["2026-11-28/a", "2026-11-28/c"]
    assert summarize_main([str(out), "--where", "optimizer.lr=1e-3", "--where", "trainer.max_epochs=5"]) == 0
    assert [r["run"] for r in read_csv(out / "runs.csv")] == ["2026-11-28/a"]
    assert {r["budget"] for r in read_csv(out / "runs.csv")} == {"5ep"}
    with pytest.raises(
        ConfigError, match=re.escape("--where optimizer.lrr: no run here has this key; did you mean optimizer.lr?")
    ):
        summarize_main([str(out), "--where", "optimizer.lrr=0.001"])
    assert summarize_main([str(out), "--by-budget"]) == 0
    assert [r["budget"] for r in read_csv(out / "runs.csv")] == ["2ep", "5ep", "5ep"]


def test_the_printed_table_fits_80_columns(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    out = tmp_path / "outputs"
    long = [f"model.channels={c}" for c in (8,)] + [
        "optimizer=sgd",
        "optimizer.lr=0.0123456",
        "data.batch_size=256",
        "+trainer.profiler=simple",
        "module.label_smoothing=0.1",
    ]
    fake_run(
        out / "multirun" / "2026-11-28" / "11-00-00" / ("0_" + ",".join(long)),
        long,
        {},
        {},
        failure="ConfigError: " + "x" * 90,
    )
    fake_run(out / "2026-11-28" / "10-00-00", [], {}, {}, {"val/acc_best": 0.95, "test/acc": 0.96})
    capsys.readouterr()
    assert summarize_main([str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    table = [line for line in printed if not line.startswith("runs under ")]  # the title: a path, whole
    assert table and max(len(line) for line in table) <= 80, "\n".join(printed)
    assert f"runs under {out} (2; by val_acc_best)" in printed
    assert ",".join(long) in (out / "runs.md").read_text()  # the files keep the whole overrides


def test_the_printed_table_shows_what_tells_runs_apart_and_cuts_no_run(tmp_path, capsys):
    """Four sweep jobs whose dir names end alike (the shared overrides): each row shows its own value of
    the swept key and its dir's date, time and job number whole, in 80 columns."""
    out = tmp_path / "outputs"
    shared = ["data.batch_size=256", "trainer.limit_train_batches=0.25", "trainer.max_epochs=1"]
    for job, lr in enumerate(("0.001", "0.002", "0.003", "0.004")):
        overrides = [f"optimizer.lr={lr}", *shared]
        name = f"{job}_" + ",".join(overrides)
        metrics = {"val/acc_best": 0.9 + job / 100, "test/acc": 0.9}
        fake_run(out / "multirun" / "2026-12-04" / "14-00-00" / name, overrides, {}, {}, metrics)
    capsys.readouterr()
    assert summarize_main([str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"runs under {out}/multirun/2026-12-04/14-00-00 (4;" in printed  # where they all are
    for job, lr in enumerate(("0.001", "0.002", "0.003", "0.004")):
        (line,) = [line for line in printed.splitlines() if f"optimizer.lr={lr}" in line]
        assert line.split()[0] == str(job)  # each job by its number, then what tells it apart
    assert "trainer.limit_train_batches=0.25" not in printed  # shared by all: no help in telling them apart
    assert read_csv(out / "runs.csv")[0]["run"].endswith("optimizer.lr=0.004," + ",".join(shared))  # files: whole
