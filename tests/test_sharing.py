"""Runs on one machine share its cores (mnist_exp/training/callbacks.py ShareTheCPU): a run counts the processes
training now, real processes holding real locks, and splits the cores with them."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest
import torch

from mnist_exp.records import rundirs
from mnist_exp.training.callbacks import ShareTheCPU
from tests.helpers import TINY_RUN, run_cli
from tests.servers import stop_process

HOLD = """
import sys, time
from mnist_exp.records import rundirs
rundirs.TRAINING_NOW = __import__("pathlib").Path(sys.argv[1])
with rundirs.counted_as_training():
    print("training", flush=True)
    time.sleep(600)
"""


@pytest.fixture
def training_now(tmp_path, monkeypatch):
    """An empty register of training processes, just for this test."""
    monkeypatch.setattr(rundirs, "TRAINING_NOW", tmp_path / "training")
    return tmp_path / "training"


def another_run(register) -> subprocess.Popen:
    """A process that counts itself as training, as a run does, until it is stopped."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(register)], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    assert process.stdout.readline() == "training\n"
    return process


def test_a_run_splits_the_cores_with_the_runs_training_now_and_takes_them_back(training_now, caplog):
    cores, threads = os.cpu_count() or 1, torch.get_num_threads()
    share = ShareTheCPU(every=10)
    other = another_run(training_now)
    try:
        with caplog.at_level(logging.INFO, logger="mnist_exp.training.callbacks"):
            share.setup(None, None, "fit")
            assert rundirs.processes_training() == 2  # the other and this one
            assert torch.get_num_threads() == max(1, cores // 2)
            assert f"1 other mnist-exp run training on this machine: {max(1, cores // 2)} of {cores}" in caplog.text
            stop_process(other)
            share.on_train_batch_start(None, None, None, batch_idx=5)  # counted every 10 batches
            assert torch.get_num_threads() == max(1, cores // 2)
            share.on_train_batch_start(None, None, None, batch_idx=10)
            assert torch.get_num_threads() == cores
            assert f"No other mnist-exp run training on this machine now: all {cores} CPU threads" in caplog.text
        share.teardown(None, None, "fit")
        assert rundirs.processes_training() == 0  # this one no longer counts
        share.setup(None, None, "test")
        share.on_exception(None, None, RuntimeError("a stage that fails skips teardown"))
        assert rundirs.processes_training() == 0
    finally:
        stop_process(other)
        torch.set_num_threads(threads)


def test_a_killed_runs_lock_file_is_not_counted_and_goes_once_stale(training_now):
    other = another_run(training_now)
    other.kill()  # kill -9: no chance to remove its lock file
    other.wait(timeout=20)
    (left,) = training_now.glob("*.lock")
    assert rundirs.processes_training() == 0 and left.exists()  # not counted; kept while it may be brand new
    stale = left.stat().st_mtime - rundirs.STALE_AFTER - 1
    os.utime(left, (stale, stale))
    assert rundirs.processes_training() == 0 and not left.exists()  # the register does not grow with every kill


def test_torch_threads_fixes_the_count_whatever_else_trains(training_now):
    threads = torch.get_num_threads()
    other = another_run(training_now)
    try:
        share = ShareTheCPU(threads=3)
        share.setup(None, None, "fit")
        assert torch.get_num_threads() == threads and rundirs.processes_training() == 1  # not counted, not changed
    finally:
        stop_process(other)


def test_a_training_run_says_it_shares_the_machine(synthetic, training_now, tmp_path):
    other = another_run(training_now)
    try:
        result = run_cli([*synthetic.overrides(), *TINY_RUN, f"hydra.run.dir={tmp_path / 'run'}"])
    finally:
        stop_process(other)
    assert result.returncode == 0, result.stderr[-3000:]
    assert rundirs.processes_training() == 0  # the run no longer counts once it ended
    cores = os.cpu_count() or 1
    assert f"1 other mnist-exp run training on this machine: {max(1, cores // 2)} of {cores} CPU threads" in (
        result.stdout + result.stderr
    )
