"""A NaN loss stops the run with a clear message and keeps the last good checkpoint."""

import csv
import json

import pytest
import torch

from mnist_exp.records.checkpoints import read_checkpoint
from tests.helpers import run_cli

pytestmark = pytest.mark.slow

# 500 training images in batches of 32: 16 steps per epoch; the weights turn NaN before step 20 (epoch 1).
RUN = [
    "trainer.max_epochs=3",
    "data.batch_size=32",
    "trainer=cpu",
    "trainer.log_every_n_steps=5",
    "callbacks.test_report.mistakes=4",
    "+callbacks.poison._target_=tests.callbacks.PoisonWeightsAtStep",
]


def test_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(synthetic, tmp_path):
    run_dir = tmp_path / "run"
    result = run_cli([*synthetic.overrides(), *RUN, "+callbacks.poison.step=20", f"hydra.run.dir={run_dir}"])
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    last = run_dir / "checkpoints" / "last.ckpt"
    assert f"training loss is nan at epoch 1, step 20; training stopped (last good checkpoint: {last})" in output
    assert "Try a lower optimizer.lr or trainer.gradient_clip_val=1.0" in output
    checkpoint = read_checkpoint(last)
    assert checkpoint["epoch"] == 0 and checkpoint["global_step"] == 16  # the end of epoch 0, untouched
    assert all(torch.isfinite(t).all() for t in checkpoint["state_dict"].values() if t.is_floating_point())
    assert not (run_dir / "metrics.json").exists()


def test_nan_loss_fails_its_sweep_job_and_the_others_finish(synthetic, tmp_path):
    sweep = tmp_path / "sweep"
    result = run_cli(
        ["-m", *synthetic.overrides(), *RUN, "+callbacks.poison.step=20,100000", f"hydra.sweep.dir={sweep}"]
    )
    assert result.returncode == 1  # a job failed
    with open(sweep / "summary.csv") as f:
        statuses = {row["overrides"].split("poison.step=")[1].split(",")[0]: row["status"] for row in csv.DictReader(f)}
    assert statuses["100000"] == "ok"
    assert statuses["20"].startswith("failed: NonFiniteLossError: training loss is nan at epoch 1, step 20")
    (failure,) = sweep.glob("*/failure.json")
    assert "NonFiniteLossError" in json.loads(failure.read_text())["error"]
