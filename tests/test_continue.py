"""Sweeps that survive interruption: the same command, run again, continues a sweep in its dir (real
processes, real signals): its finished jobs kept byte for byte, the stopped one resumed from its checkpoint,
the rest run; a different sweep into that dir is refused; an Optuna search counts n_trials over its study."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mnist_exp import PROJECT_ROOT
from mnist_exp.records.record import read_record
from tests.helpers import run_cli

pytestmark = pytest.mark.slow

JOB = ["trainer.max_epochs=2", "data.batch_size=32", "trainer=cpu", "callbacks.test_report.mistakes=4"]
STEPS_PER_EPOCH = 16  # 500 synthetic training images (600 less 100 to validate) in batches of 32
# Job 2 signals its whole process group, as `kill -TERM -PGID` or `kill -9 -PGID` would: SIGTERM halfway through
# its second epoch (Lightning stops, last.ckpt is saved mid-epoch), SIGKILL two steps into it (the first
# epoch's last.ckpt is all a resume has).
KILL = {
    "SIGTERM": [f"+callbacks.kill.step={STEPS_PER_EPOCH + 8}"],
    "SIGKILL": [f"+callbacks.kill.step={STEPS_PER_EPOCH + 2}"],
}


def fingerprints(job_dir: Path) -> dict[str, str]:
    """SHA-256 of a job's record, metrics, log and checkpoints: what a continuation must leave as it was."""
    files = [job_dir / name for name in ("run.json", "metrics.json", "train.log", "test_report.json")]
    files += sorted((job_dir / "checkpoints").iterdir())
    return {str(f.relative_to(job_dir)): hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


def job_dirs(sweep: Path) -> list[Path]:
    return sorted(
        (p for p in sweep.iterdir() if p.is_dir() and p.name[0].isdigit()), key=lambda p: int(p.name.split("_")[0])
    )


def run_sweep(command: list[str]) -> subprocess.CompletedProcess:
    """`python -m mnist_exp COMMAND` in a process group of its own (the group a signal to it reaches)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", "mnist_exp", *command],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        start_new_session=True,
    )


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGKILL"])
def test_a_sweep_killed_in_its_third_job_continues_when_run_again(synthetic, tmp_path, signal_name):
    """SIGTERM: the sweep in a dir of the user's choosing, continued by its own command; SIGKILL: in the
    default dir, continued by the short form `hydra.sweep.dir=last`."""
    outputs = tmp_path / "outputs"
    kill = [
        "+callbacks.kill._target_=tests.callbacks.SignalGroupInJob",
        "+callbacks.kill.job=2",
        f"+callbacks.kill.signal_name={signal_name}",
        *KILL[signal_name],
    ]
    command = ["-m", *synthetic.overrides(), *JOB, "optimizer.lr=0.001,0.002,0.003,0.004", *kill]
    command.append(f"paths.log_dir={outputs}")
    if signal_name == "SIGTERM":
        command.append(f"hydra.sweep.dir={tmp_path / 'sweep'}")
    killed = run_sweep(command)
    assert killed.returncode in (-getattr(signal, signal_name), 128 + getattr(signal, signal_name)), killed.stderr
    (sweep,) = [tmp_path / "sweep"] if signal_name == "SIGTERM" else list(outputs.glob("multirun/*/*"))
    first, second, third = job_dirs(sweep)  # the fourth never started
    assert read_record(third)["status"] in ("stopped", "running") and (third / "checkpoints" / "last.ckpt").is_file()
    kept = {job.name: fingerprints(job) for job in (first, second)}

    again = command if signal_name == "SIGTERM" else ["hydra.sweep.dir=last", f"paths.log_dir={outputs}"]
    continued = run_sweep(again)
    assert continued.returncode == 0, continued.stderr[-3000:]
    if signal_name == "SIGKILL":
        assert f"hydra.sweep.dir=last: {sweep} (continuing -m " in continued.stderr
    jobs = job_dirs(sweep)
    assert len(jobs) == 4 and list(outputs.glob("multirun/*/*")) == ([] if signal_name == "SIGTERM" else [sweep])
    assert {job.name: fingerprints(job) for job in jobs[:2]} == kept  # byte for byte as they were
    for job in jobs[:2]:
        assert f"{job.name}: finished earlier (ok), kept as it is" in continued.stdout
    resumed = read_record(jobs[2])
    assert resumed["status"] == "ok" and resumed["metrics"]["epochs"] == 2
    assert [r["checkpoint"] for r in resumed["resumes"]] == [str(jobs[2] / "checkpoints" / "last.ckpt")]
    assert read_record(jobs[3])["status"] == "ok" and "resumes" not in read_record(jobs[3])
    with open(sweep / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert sorted(row["job"] for row in rows) == ["0", "1", "2", "3"] and {row["status"] for row in rows} == {"ok"}
    assert f"sweep {sweep} (4 jobs; continued 1 time" in continued.stdout
    starts = json.loads((sweep / "sweep.json").read_text())["starts"]
    assert len(starts) == 2 and starts[0]["ended"] is None and starts[1]["ended"]


def test_another_sweep_into_a_dir_that_holds_one_is_refused(synthetic, tmp_path):
    sweep = tmp_path / "sweep"
    first = run_cli(
        ["-m", *synthetic.overrides(), *JOB, "trainer.max_epochs=1", "model.channels=4", f"hydra.sweep.dir={sweep}"]
    )
    assert first.returncode == 0, first.stderr[-3000:]
    before = {job.name: fingerprints(job) for job in job_dirs(sweep)}
    other = run_cli(
        ["-m", *synthetic.overrides(), *JOB, "trainer.max_epochs=1", "model.channels=8", f"hydra.sweep.dir={sweep}"]
    )
    assert other.returncode == 1
    assert other.stderr.strip().startswith(f"Error: hydra.sweep.dir={sweep} holds another sweep (model.channels=4")
    assert {job.name: fingerprints(job) for job in job_dirs(sweep)} == before


def test_a_search_killed_after_three_trials_ends_with_n_trials_when_continued(synthetic, tmp_path):
    import optuna

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    kill = [
        "+callbacks.kill._target_=tests.callbacks.SignalGroupInJob",
        "+callbacks.kill.job=3",  # trial 3 (jobs are numbered by their trial)
        "+callbacks.kill.signal_name=SIGKILL",
        "+callbacks.kill.step=5",
    ]
    search = ["hparams_search=optuna", "hydra.sweeper.n_trials=6", f"hydra.sweeper.storage={storage}"]
    command = [
        *synthetic.overrides(),
        *JOB,
        "trainer.max_epochs=1",
        *search,
        *kill,
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
    ]
    killed = run_sweep(command)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    study = optuna.load_study(study_name="mnist-exp", storage=storage)
    states = [trial.state for trial in study.get_trials()]
    assert states.count(optuna.trial.TrialState.RUNNING) == 1 and len(states) == 4

    continued = run_sweep(command)
    assert continued.returncode == 0, continued.stderr[-3000:]
    said = continued.stdout + continued.stderr
    assert "trial 3: its worker is gone (killed); marked FAIL" in said and "trial 3: its parameters asked again" in said
    trials = optuna.load_study(study_name="mnist-exp", storage=storage).get_trials()
    finished = [
        t
        for t in trials
        if t.state.is_finished() and t.state != optuna.trial.TrialState.FAIL and "duplicate_of" not in t.user_attrs
    ]
    assert len(finished) == 6  # n_trials over the whole study, not six more
    (retried,) = [t for t in trials if t.user_attrs.get("retry_of") == 3]
    assert retried.params == trials[3].params and trials[3].state == optuna.trial.TrialState.FAIL


def test_a_finished_joblib_sweep_run_again_keeps_every_job(synthetic, tmp_path):
    """Each job looks at its own dir, so jobs run by joblib's worker processes are kept alike."""
    sweep = tmp_path / "sweep"
    launcher = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "torch_threads=1"]
    command = ["-m", *synthetic.overrides(), *JOB, "trainer.max_epochs=1", *launcher, "model.channels=4,8"]
    command.append(f"hydra.sweep.dir={sweep}")
    first = run_sweep(command)
    assert first.returncode == 0, first.stderr[-3000:]
    before = {job.name: fingerprints(job) for job in job_dirs(sweep)}
    assert len(before) == 2
    again = run_sweep(command)
    assert again.returncode == 0, again.stderr[-3000:]
    assert {job.name: fingerprints(job) for job in job_dirs(sweep)} == before
    assert f"sweep {sweep} (2 jobs; continued 1 time" in again.stdout
