"""Seeds as replicates: groups of runs that differ only in seed, their spread, and a comparison of two."""

from __future__ import annotations

import math
import statistics

import pytest
from scipy import stats

from mnist_exp.errors import ConfigError
from mnist_exp.summarize import main as summarize_main
from tests.helpers import fake_run, read_csv

LOW = [0.9901, 0.9893, 0.9910, 0.9897, 0.9905]  # optimizer.lr=0.001, seeds 0-4
HIGH = [0.9921, 0.9915, 0.9930, 0.9912, 0.9925]  # optimizer.lr=0.003
FIT = [10.0, 11.0, 12.0, 10.5, 11.5]


def replicated(tmp_path):
    out = tmp_path / "outputs"
    for lr, accuracies in (("0.001", LOW), ("0.003", HIGH)):
        for seed, (accuracy, fit) in enumerate(zip(accuracies, FIT, strict=True)):
            overrides = [f"optimizer.lr={lr}", f"seed={seed}"]
            metrics = {"val/acc_best": accuracy - 0.001, "test/acc": accuracy, "fit_seconds": fit}
            fake_run(out / "multirun" / f"lr{lr}" / f"{seed}_seed={seed}", overrides, {}, {}, metrics)
    fake_run(out / "2026-11-28" / "alone", ["model.channels=32"], {}, {}, {"val/acc_best": 0.98, "test/acc": 0.98})
    return out


def test_runs_that_differ_only_in_seed_are_one_group_with_mean_std_and_ci95(tmp_path, capsys):
    out = replicated(tmp_path)
    assert summarize_main([str(out)]) == 0
    groups = {row["group"]: row for row in read_csv(out / "groups.csv")}
    assert set(groups) == {"optimizer.lr=0.001", "optimizer.lr=0.003", "model.channels=32"}
    low = groups["optimizer.lr=0.001"]
    assert low["n"] == "5" and low["seeds"] == "0,1,2,3,4"
    half = stats.t.ppf(0.975, 4) * statistics.stdev(LOW) / math.sqrt(5)
    assert float(low["test_acc_mean"]) == pytest.approx(statistics.fmean(LOW), abs=1e-6)
    assert float(low["test_acc_std"]) == pytest.approx(statistics.stdev(LOW), abs=1e-6)
    assert float(low["test_acc_ci95"]) == pytest.approx(half, abs=1e-6)
    assert float(low["fit_seconds_mean"]) == pytest.approx(11.0)
    assert groups["model.channels=32"]["test_acc_std"] == ""  # one run: no spread
    assert "| group | n | seeds |" in (out / "groups.md").read_text()
    runs = read_csv(out / "runs.csv")
    assert {row["group"] for row in runs} == set(groups) and {row["seed"] for row in runs} >= {"0", "4"}
    assert "groups of runs that differ only in seed" in capsys.readouterr().out


def test_two_groups_compared_with_welchs_t_test(tmp_path, capsys):
    out = replicated(tmp_path)
    assert summarize_main([str(out), "--compare", "optimizer.lr=1e-3", "optimizer.lr=0.003"]) == 0  # values as values
    lines = capsys.readouterr().out.strip().splitlines()[-3:]
    welch = stats.ttest_ind(HIGH, LOW, equal_var=False)
    difference = statistics.fmean(HIGH) - statistics.fmean(LOW)
    half = welch.confidence_interval(0.95)  # scipy's own Welch interval, to check ours against
    assert lines[0].startswith("A: optimizer.lr=0.001  test_acc 99.0120%") and "(n=5)" in lines[0]
    assert lines[2] == (
        f"B - A: {difference:+.4%}, 95% CI [{half.low:+.4%}, {half.high:+.4%}], p = {welch.pvalue:.3g} "
        "(Welch's t-test (two-sided, unequal variances)): they differ beyond seed noise"
    )


def test_a_comparison_needs_one_group_and_replicates_on_each_side(tmp_path):
    out = replicated(tmp_path)
    with pytest.raises(ConfigError, match="matches 2 groups"):
        summarize_main([str(out), "--compare", "seed=0", "optimizer.lr=0.003"])
    with pytest.raises(ConfigError, match="1 distinct seed with test_acc"):
        summarize_main([str(out), "--compare", "model.channels=32", "optimizer.lr=0.003"])
    with pytest.raises(ConfigError, match="no finished run has these overrides"):
        summarize_main([str(out), "--compare", "optimizer.lr=0.01", "optimizer.lr=0.003"])


def test_a_sweeps_plot_shows_each_value_with_the_seeds_spread(tmp_path):
    from mnist_exp.summarize import plot, run_row

    out = replicated(tmp_path)
    rows = [run_row(d, ["status"]) for d in sorted((out / "multirun").glob("*/*"))]
    assert len(rows) == 10
    plot(rows, tmp_path / "summary.png")
    from PIL import Image

    with Image.open(tmp_path / "summary.png") as image:
        assert image.size[0] > 300  # one panel, optimizer.lr: seed is not a parameter of its own


def test_a_spec_that_is_exactly_one_groups_overrides_picks_that_group(tmp_path, capsys):
    out = replicated(tmp_path)
    for seed in (0, 1):  # a wider model at the same lr: its group holds optimizer.lr=0.003 too
        overrides = ["optimizer.lr=0.003", "model.channels=8", f"seed={seed}"]
        fake_run(out / "wide" / str(seed), overrides, {}, {}, {"val/acc_best": 0.98, "test/acc": 0.98})
    capsys.readouterr()
    assert summarize_main([str(out), "--compare", "optimizer.lr=0.001", "optimizer.lr=0.003"]) == 0
    b_line = capsys.readouterr().out.strip().splitlines()[-2]
    assert b_line.startswith("B: optimizer.lr=0.003  test_acc") and b_line.endswith("(n=5)")


def test_a_seed_run_again_is_one_sample_not_several(tmp_path, capsys):
    """Three runs of each of two commands, none naming a seed (so all ran with the config's 42): each group
    has one distinct seed, so no spread and no comparison, and the refusal says why in one line."""
    out = tmp_path / "outputs"
    for lr, accuracy in (("0.001", 0.5435), ("0.003", 0.6120)):
        for again in range(3):
            metrics = {"val/acc_best": accuracy, "test/acc": accuracy, "fit_seconds": 3.0}
            fake_run(out / f"lr{lr}-{again}", [f"optimizer.lr={lr}"], {}, {"seed": 42}, metrics)
    assert summarize_main([str(out)]) == 0
    groups = {row["group"]: row for row in read_csv(out / "groups.csv")}
    assert groups["optimizer.lr=0.001"]["n"] == "1" and groups["optimizer.lr=0.001"]["seeds"] == "42x3"
    assert groups["optimizer.lr=0.001"]["test_acc_std"] == "" and groups["optimizer.lr=0.001"]["test_acc_ci95"] == ""
    with pytest.raises(ConfigError) as refused:
        summarize_main([str(out), "--compare", "optimizer.lr=0.001", "optimizer.lr=0.003"])
    assert str(refused.value) == (
        "--compare 'optimizer.lr=0.001': 1 distinct seed with test_acc (seeds 42x3); a seed run again repeats the "
        "same run, so error bars need at least 2 distinct seeds a side: add runs with other seeds (seed=1,2,...)"
    )
    # one run more with another seed: two samples on that side, each seed once
    fake_run(out / "lr0.001-seed1", ["optimizer.lr=0.001", "seed=1"], {}, {"seed": 1}, {**metrics, "test/acc": 0.55})
    assert summarize_main([str(out)]) == 0
    low = {row["group"]: row for row in read_csv(out / "groups.csv")}["optimizer.lr=0.001"]
    assert low["n"] == "2" and low["seeds"] == "1,42x3"
    assert float(low["test_acc_mean"]) == pytest.approx((0.5435 + 0.55) / 2, abs=1e-6)
