"""Resume, interruption and reproducibility: a stopped and resumed run ends exactly where an
uninterrupted one does, and TensorBoard shows each step once."""

import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml

from mnist_exp.records.checkpoints import read_checkpoint
from mnist_exp.records.rundirs import claim_dir, find_checkpoint
from tests.helpers import (
    TINY_RUN,
    SyntheticData,
    compose,
    load_events,
    run_cli,
    run_process,
    write_synthetic,
)

pytestmark = pytest.mark.slow

# 900 training images in batches of 32: 29 steps per epoch. Augmentation and dropout draw random
# numbers every step, so a resume that lost the random state would not match.
RUN = [
    "trainer.max_epochs=3",
    "data.batch_size=32",
    "data.eval_batch_size=50",
    "trainer=cpu",
    "trainer.log_every_n_steps=5",
    "trainer.deterministic=true",
    "transforms=augment",
    "model.dropout=0.3",
    "test_checkpoint=last",
    "callbacks.test_report.mistakes=4",
    "torch_threads=2",  # runs in this process and in processes of their own compare float for float
]
STEPS_PER_EPOCH = 29


@dataclass
class Reference:
    data: SyntheticData
    run_dir: Path
    root: Path


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Reference:
    """An uninterrupted run."""
    root = tmp_path_factory.mktemp("resume")
    data = write_synthetic(root, train=1000)
    run_dir = root / "reference"
    result = run_cli([*data.overrides(), *RUN, f"hydra.run.dir={run_dir}"])
    assert result.returncode == 0, result.stderr[-3000:]
    return Reference(data, run_dir, root)


def scalar_steps(run_dir: Path) -> dict:
    """tag -> steps, as TensorBoard shows them (all event files of the dir, orphaned steps purged)."""
    events = load_events(run_dir)
    return {tag: [event.step for event in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def assert_same_run(run_dir: Path, reference: Path) -> None:
    ours, theirs = (json.loads((d / "metrics.json").read_text()) for d in (run_dir, reference))
    for key in ("test/acc", "test/loss", "val/acc_best", "epochs"):
        assert ours[key] == theirs[key], key
    ours, theirs = (read_checkpoint(d / "checkpoints" / "last.ckpt") for d in (run_dir, reference))
    assert ours["global_step"] == theirs["global_step"] == 3 * STEPS_PER_EPOCH
    for name, tensor in theirs["state_dict"].items():
        assert torch.equal(ours["state_dict"][name], tensor), name
    steps, reference_steps = scalar_steps(run_dir), scalar_steps(reference)
    assert steps.keys() == reference_steps.keys()
    for tag, values in reference_steps.items():
        assert steps[tag] == values, tag  # none duplicated, none missing
    assert len(steps["val/acc"]) == 3 and len(steps["train/loss_step"]) == 3 * STEPS_PER_EPOCH // 5


def interrupt(
    reference: Reference,
    log_dir: Path,
    signal_name: str,
    step: int,
    when: str = "train_batch",
    process: bool = False,
    extra: tuple[str, ...] = (),
):
    """A run like the reference that sends itself `signal_name` after optimizer step `step`; its run dir.
    The signal is real either way; `process` runs it in a process of its own rather than in this one."""
    stop = [
        "+callbacks.stop._target_=tests.callbacks.SignalAtStep",
        f"+callbacks.stop.step={step}",
        f"+callbacks.stop.signal_name={signal_name}",
        f"+callbacks.stop.when={when}",
    ]
    result = (run_process if process else run_cli)(
        [*reference.data.overrides(), *RUN, *stop, *extra, f"paths.log_dir={log_dir}"]
    )
    assert result.returncode == {"SIGTERM": 143, "SIGINT": 130}[signal_name], result.stderr[-3000:]
    assert not list(log_dir.glob("*/*/metrics.json"))
    (run_dir,) = [p.parent.parent for p in log_dir.glob("*/*/checkpoints/last.ckpt")]
    assert f"+callbacks.stop.signal_name={signal_name}," in run_dir.name  # named by this run's own overrides
    return run_dir, result.stdout + result.stderr


def resume(reference: Reference, log_dir: Path, ckpt_path: str) -> str:
    # The run's saved config is used as it was (the stop callback in it stays quiet in a resumed fit).
    result = run_cli([f"paths.log_dir={log_dir}", f"ckpt_path={ckpt_path}"])
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout + result.stderr


def test_sigterm_mid_epoch_then_ckpt_path_last_matches_the_uninterrupted_run(reference, tmp_path):
    log_dir = tmp_path / "outputs"
    run_dir, output = interrupt(reference, log_dir, "SIGTERM", step=40, process=True)
    assert f"Stopped by SIGTERM: saved {run_dir}/checkpoints/last.ckpt (epoch 2 of 3, batch 11 of 29)" in output
    assert "Resume with: python -m mnist_exp ckpt_path=last" in output
    saved = read_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    assert saved["global_step"] == 40 and saved["epoch"] == 1

    output = resume(reference, log_dir, "last")
    assert [p.parent.parent for p in log_dir.glob("*/*/checkpoints/last.ckpt")] == [run_dir]  # the same run dir
    # times per segment, summed: the stopped run's fit, then the resumed one's; the resumed epoch timed from
    # its first batch here (Lightning runs no epoch-start hook for it)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    stopped_fit, resumed_fit = metrics["fit_segments"]
    assert stopped_fit > 0 and resumed_fit > 0
    assert metrics["fit_seconds"] == pytest.approx(stopped_fit + resumed_fit, abs=0.02)
    epoch_times = re.findall(r"epoch (\d)/3  .*  ([\d.]+) s, ([\d,]+) images/s", output)
    assert [epoch for epoch, _, _ in epoch_times] == ["2", "3"]  # the epochs this segment trained
    for _, seconds, rate in epoch_times:
        assert 0 < float(seconds) < stopped_fit + resumed_fit and int(rate.replace(",", "")) > 0
    assert 0 < metrics["train_images_per_second"] < 10 * max(int(r.replace(",", "")) for _, _, r in epoch_times)
    assert json.loads((run_dir / "metrics.json").read_text())["resumed_from"] == str(
        run_dir / "checkpoints" / "last.ckpt"
    )
    (resumed_config,) = (run_dir / ".hydra").glob("resumed-*/config.yaml")
    assert yaml.safe_load(resumed_config.read_text())["model"]["dropout"] == 0.3  # the run's own config
    assert "ckpt_path: null" in (run_dir / ".hydra" / "config.yaml").read_text()  # the original config, kept
    assert_same_run(run_dir, reference.run_dir)


def test_ctrl_c_mid_epoch_then_ckpt_path_file_matches_the_uninterrupted_run(reference, tmp_path):
    log_dir = tmp_path / "outputs"
    run_dir, output = interrupt(reference, log_dir, "SIGINT", step=20)
    assert "Ctrl+C: stopping after this batch and saving a checkpoint" in output
    assert "Stopped by SIGINT: saved" in output and "(epoch 1 of 3, batch 20 of 29)" in output
    # one story: not Lightning's "Received SIGTERM" for a Ctrl+C, nor its weights_only default warning
    assert "Received SIGTERM" not in output and "weights_only" not in output, output[-3000:]
    resume(reference, log_dir, str(run_dir / "checkpoints" / "last.ckpt"))
    assert_same_run(run_dir, reference.run_dir)


def test_a_stop_at_an_epoch_end_keeps_that_epochs_checkpoint(reference, tmp_path):
    # A signal at the end of epoch 1's validation: its checkpoints are saved, then the run stops.
    log_dir = tmp_path / "outputs"
    # Every epoch's checkpoint is kept, so that epoch 0's is there whichever epoch validated best.
    run_dir, output = interrupt(
        reference,
        log_dir,
        "SIGTERM",
        step=2 * STEPS_PER_EPOCH,
        when="validation_end",
        extra=("callbacks.model_checkpoint.save_top_k=-1",),
    )
    assert (
        f"Stopped by SIGTERM: kept {run_dir}/checkpoints/last.ckpt, saved at the end of the last finished epoch"
        in output
    )
    assert read_checkpoint(run_dir / "checkpoints" / "last.ckpt")["global_step"] == 2 * STEPS_PER_EPOCH

    # Resuming from an older checkpoint of the same run (epoch 0's) repeats steps 29-57, which the
    # first run had already logged: TensorBoard shows the resumed run's, each step once.
    (epoch_0,) = (run_dir / "checkpoints").glob("epoch00-*.ckpt")
    resume(reference, log_dir, str(epoch_0))
    assert_same_run(run_dir, reference.run_dir)


def test_a_stop_during_validation_resumes_from_the_epoch_before(reference, tmp_path):
    # Validation (2 batches of 50) after epoch 1's last step is cut after its first batch: the run keeps
    # epoch 0's checkpoint, and the resumed run repeats epoch 1 and its validation.
    log_dir = tmp_path / "outputs"
    run_dir, output = interrupt(reference, log_dir, "SIGTERM", step=2 * STEPS_PER_EPOCH, when="validation_batch")
    assert f"Stopped by SIGTERM: kept {run_dir}/checkpoints/last.ckpt" in output
    assert read_checkpoint(run_dir / "checkpoints" / "last.ckpt")["global_step"] == STEPS_PER_EPOCH
    resume(reference, log_dir, "last")
    assert_same_run(run_dir, reference.run_dir)


def test_same_seed_with_deterministic_gives_identical_runs(reference, tmp_path):
    run_dir = tmp_path / "again"
    result = run_cli([*reference.data.overrides(), *RUN, f"hydra.run.dir={run_dir}"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert_same_run(run_dir, reference.run_dir)


def test_ckpt_path_last_is_the_newest_last_ckpt_anywhere_under_outputs(tmp_path):
    older = tmp_path / "2026-11-26" / "10-00-00" / "checkpoints" / "last.ckpt"
    newer = tmp_path / "multirun" / "2026-11-27" / "09-00-00_1" / "3_model.channels=8" / "checkpoints" / "last.ckpt"
    for path, age in ((older, 100), (newer, 10)):
        path.parent.mkdir(parents=True)
        path.write_bytes(b"x")
        os.utime(path, (time.time() - age, time.time() - age))
    assert find_checkpoint("last", tmp_path) == newer.resolve()
    assert find_checkpoint(str(older), tmp_path) == older.resolve()


def test_a_run_in_a_dir_of_its_own_resumes_there_exactly_and_refuses_a_changed_config(reference, tmp_path):
    """hydra.run.dir outside paths.log_dir (a cluster's /scratch/exp1): SIGTERM in the second epoch, then
    ckpt_path=THAT_DIR/checkpoints/last.ckpt carries on there with the run's saved config, float for float.
    A resume that would change the run is refused in one line naming the keys, before any dir is made."""
    run_dir, log_dir = tmp_path / "scratch" / "exp1", tmp_path / "outputs"
    stop = ["+callbacks.stop._target_=tests.callbacks.SignalAtStep", "+callbacks.stop.step=40"]
    # in this process (a real signal all the same; the test above stops one in a process of its own)
    result = run_cli([*reference.data.overrides(), *RUN, *stop, f"hydra.run.dir={run_dir}", f"paths.log_dir={log_dir}"])
    assert result.returncode == 143, result.stderr[-3000:]
    last = run_dir / "checkpoints" / "last.ckpt"
    assert read_checkpoint(last)["global_step"] == 40

    refused = run_cli([f"paths.log_dir={log_dir}", f"ckpt_path={last}", "trainer.max_epochs=5", "data.batch_size=64"])
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines()[-1] == (
        f"Error: ckpt_path={last} resumes its run as it was configured: "
        "trainer.max_epochs is 3 in the checkpoint's run but 5 here; "
        "data.batch_size is 32 in the checkpoint's run but 64 here. "
        "Resume without these overrides, or start a new run"
    )
    assert not log_dir.exists() and not list((run_dir / ".hydra").glob("resumed-*"))

    output = resume(reference, log_dir, str(last))  # today's defaults (5 epochs, batch 128) do not apply
    assert f"Resuming {run_dir} from last.ckpt (step 40) with its saved config" in output
    assert not log_dir.exists()  # no stray run dir
    assert_same_run(run_dir, reference.run_dir)


def test_two_runs_claiming_the_same_dir_name_get_different_dirs(tmp_path):
    base = str(tmp_path / "10-31-07_seed-1")

    def run_config(run_dir: str):
        return compose(return_hydra_config=True, run_dir=run_dir)

    first, raced = run_config(f"${{unique_dir:{base}}}"), run_config(f"${{unique_dir:{base}}}")
    assert first.hydra.run.dir == raced.hydra.run.dir == base  # both chose the name: resolving creates nothing
    assert not Path(base).exists()
    assert claim_dir(first, "hydra.run.dir") == Path(base)
    assert claim_dir(raced, "hydra.run.dir") == Path(f"{base}-2")  # lost the race: chose again
    assert raced.hydra.run.dir == f"{base}-2"  # ... and the run goes on in the dir it claimed
    assert claim_dir(run_config(f"${{unique_dir:{base}}}"), "hydra.run.dir") == Path(f"{base}-3")
    assert claim_dir(run_config(base), "hydra.run.dir") == Path(base)  # a name given as is may exist (resume, DDP)


def test_two_runs_started_in_the_same_second_never_share_a_dir(synthetic, tmp_path):
    """Both runs ask for the same run dir name, as the default (date, time, overrides) does for runs
    started in the same second; the second to claim it gets a -2 suffix."""
    import subprocess
    import sys

    from mnist_exp import PROJECT_ROOT

    log_dir = tmp_path / "outputs"
    args = [
        *synthetic.overrides(),
        "trainer.max_epochs=1",
        "data.batch_size=64",
        "trainer=cpu",
        f"paths.log_dir={log_dir}",
        f"hydra.run.dir='${{unique_dir:{log_dir}/2026-11-27/10-31-07}}'",
    ]  # one name for both
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "mnist_exp", *args],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for run in runs:
        _, stderr = run.communicate(timeout=300)
        assert run.returncode == 0, stderr[-3000:]
    day = log_dir / "2026-11-27"
    assert sorted(p.name for p in day.iterdir()) == ["10-31-07", "10-31-07-2"]
    for run_dir in day.iterdir():
        assert (run_dir / "metrics.json").exists() and (run_dir / ".hydra" / "config.yaml").exists()


def test_a_finished_run_is_never_resumed_nor_rewritten(synthetic_run, tmp_path):
    """`ckpt_path=last` is the newest stopped run; with none, nothing to resume. A finished run's checkpoint,
    given by path, is refused too: a resume would test it again and rewrite its record and metrics."""
    import shutil

    _, finished_run = synthetic_run
    log_dir = tmp_path / "outputs"
    run_dir = log_dir / "2026-11-27" / "10-31-07"
    shutil.copytree(finished_run, run_dir)
    before = {p: p.stat().st_mtime_ns for p in run_dir.rglob("*") if p.is_file()}
    for value in ("last", str(run_dir / "checkpoints" / "last.ckpt")):
        refused = run_cli([f"paths.log_dir={log_dir}", f"ckpt_path={value}"])
        assert refused.returncode == 1
        lines = refused.stderr.strip().splitlines()
        assert len(lines) == 1, lines
        assert lines[0] == (
            f"Error: ckpt_path=last: nothing to resume, no stopped run under {log_dir} (every run there finished: 1)"
            if value == "last"
            else f"Error: ckpt_path={value}: its run {run_dir} finished (metrics.json); a resume would rewrite its "
            "results. Start a new run, or evaluate the checkpoint with mnist-exp-evaluate"
        )
    assert {p: p.stat().st_mtime_ns for p in run_dir.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in log_dir.rglob("*") if p.is_dir() and p.parent == log_dir) == ["2026-11-27"]


def test_a_resume_that_names_the_runs_own_options_again_changes_nothing(synthetic, tmp_path):
    """`ckpt_path=last data=synthetic`: the run's own dataset option named again does not bring that option's
    defaults back over the run's values (batch 32, not the option's 128): the stopped epoch goes on from its
    5th batch, and every epoch line says its time and speed."""
    log_dir = tmp_path / "outputs"
    stop = ["+callbacks.stop._target_=tests.callbacks.SignalAtStep", "+callbacks.stop.step=20"]
    stopped = run_cli([*synthetic.overrides(), *TINY_RUN, *stop, f"paths.log_dir={log_dir}"])
    assert stopped.returncode == 143, stopped.stderr[-3000:]
    assert "(epoch 2 of 2, batch 4 of 16)" in stopped.stdout + stopped.stderr  # epochs counted from 1, as in the lines
    resumed = run_cli([*synthetic.overrides(), "ckpt_path=last", f"paths.log_dir={log_dir}"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    (run_dir,) = [p.parent.parent for p in log_dir.glob("*/*/checkpoints/last.ckpt")]
    assert read_checkpoint(run_dir / "checkpoints" / "last.ckpt")["global_step"] == 2 * 16
    assert json.loads((run_dir / "metrics.json").read_text())["epochs"] == 2
    line = re.search(r"epoch 2/2  train loss .* val loss .*  ([\d.]+) s, ([\d,]+) images/s", resumed.stdout)
    assert line and float(line.group(1)) > 0 and int(line.group(2).replace(",", "")) > 0, resumed.stdout[-2000:]
