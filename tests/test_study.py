"""Optuna studies shared by many sweep workers (mnist_exp/study/), against a real PostgreSQL server."""

from __future__ import annotations

import csv
import functools
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState

from mnist_exp import PROJECT_ROOT
from mnist_exp.study.storage import load_study, masked, open_storage, with_retries
from mnist_exp.study.sweeper import BEYOND, DUPLICATE_ASKS, StudySweeper, mixed_seed
from tests.postgres import postgres_server, require_server_binaries

# A trial of a few batches on the synthetic digits: the sweeps here measure the study, not the model.
QUICK_TRIAL = [
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=3",
    "trainer.limit_val_batches=1",
    "trainer.accelerator=cpu",
    "callbacks.test_report.mistakes=4",
]


@pytest.fixture(scope="module")
def server():
    require_server_binaries()
    with postgres_server() as running:
        yield running


def sweep_args(synthetic, sweep_dir: Path, storage: str, study: str, n_trials: int, *extra: str) -> list[str]:
    return [
        *synthetic.overrides(),
        *QUICK_TRIAL,
        "hparams_search=optuna",
        f"hydra.sweeper.n_trials={n_trials}",
        f"hydra.sweeper.study_name={study}",
        f"hydra.sweeper.storage={storage}",
        f"hydra.sweep.dir={sweep_dir}",
        *extra,
    ]


def sweep(*args, env: dict | None = None) -> subprocess.Popen:
    """A sweep worker in a process of its own, started now (sweep_args' arguments)."""
    return subprocess.Popen(
        [sys.executable, "-m", "mnist_exp", *sweep_args(*args)],
        cwd=PROJECT_ROOT,
        env={**os.environ, **(env or {})},
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def sweep_here(*args) -> tuple[int, str]:
    """A sweep worker run to its end in this process (sweep_args' arguments): as a worker, the same as a
    process of its own (another pid), without the ~6 s import. (Imported here: the race test's spawned
    processes import this module, which stays light.)"""
    from tests.helpers import run_cli

    result = run_cli(sweep_args(*args))
    return result.returncode, result.stdout + result.stderr


def finish(process: subprocess.Popen, timeout: float = 300) -> tuple[int, str]:
    stdout, stderr = process.communicate(timeout=timeout)
    return process.returncode, stdout + stderr


def trials_of(storage: str, study: str, env_password: str | None = None) -> list[optuna.trial.FrozenTrial]:
    if env_password:
        os.environ["PGPASSWORD"] = env_password
    try:
        return optuna.load_study(study_name=study, storage=storage).get_trials()
    finally:
        os.environ.pop("PGPASSWORD", None)


def point(trial) -> tuple:
    return tuple(sorted(trial.params.items()))


def read_csv(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def ran(trials: list) -> list:
    """The trials that ran: all but those asked when the study already had n_trials (two workers at once)."""
    beyond = [t for t in trials if t.user_attrs.get(BEYOND)]
    assert all(t.state == TrialState.PRUNED for t in beyond)
    return [t for t in trials if t not in beyond]


@pytest.mark.slow
def test_two_workers_share_one_postgres_study_and_a_rerun_adds_new_points(server, synthetic, tmp_path):
    with_password, plain = server.url(with_password=True), server.url()
    # worker 1 has the password in its URL, worker 2 gets it from PGPASSWORD (libpq), both start at once;
    # n_trials is the study's total: together they run 6
    first = sweep(synthetic, tmp_path / "w1", with_password, "shared", 6)
    second = sweep(synthetic, tmp_path / "w2", plain, "shared", 6, env={"PGPASSWORD": server.password})
    (code1, out1), (code2, out2) = finish(first), finish(second)
    assert code1 == 0, out1[-3000:]
    assert code2 == 0, out2[-3000:]
    trials = ran(trials_of(with_password, "shared"))
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 6
    assert len({point(t) for t in trials}) == 6
    rows = [row for w in ("w1", "w2") for row in read_csv(tmp_path / w / "summary.csv")]
    assert len(rows) == 6 and {r["status"] for r in rows} == {"ok"}  # each worker's dir: its own trials
    numbers = sorted(int(p.name.split("_")[0]) for w in ("w1", "w2") for p in (tmp_path / w).glob("*_*") if p.is_dir())
    assert numbers == sorted(t.number for t in trials)  # job dirs are numbered by trial number, across workers

    # the study taken on to 8 trials: new points, not the first worker's sequence replayed
    code3, out3 = sweep_here(synthetic, tmp_path / "w3", with_password, "shared", 8)
    assert code3 == 0, out3[-3000:]
    trials = ran(trials_of(with_password, "shared"))
    assert len(trials) == 8 and all(t.state == TrialState.COMPLETE for t in trials)
    assert len({point(t) for t in trials}) == 8

    # the whole study, all workers, in one command
    from tests.helpers import run_cli

    summary = run_cli(
        ["--storage", with_password, "--study", "shared", str(tmp_path / "study")],
        module="mnist_exp.summarize",
        env={"COLUMNS": "250"},
    )
    assert summary.returncode == 0, summary.stderr
    rows = read_csv(tmp_path / "study" / "study.csv")
    asked = len(trials_of(with_password, "shared"))  # (with any asked beyond n_trials, pruned unrun)
    complete = [r for r in rows if r["state"] == "complete"]
    assert len(rows) == asked and len(complete) == 8 and len({r["worker"] for r in complete}) == 3
    assert f"{asked} trials, 3 workers" in summary.stdout and ":***@" in summary.stdout

    # the password: in no log, summary or output; with PGPASSWORD in no file at all
    said = out1 + out2 + out3 + summary.stdout + summary.stderr
    written = [
        p
        for p in tmp_path.rglob("*")
        if p.is_file() and (p.suffix in (".log", ".csv", ".md") or p.name == "optimization_results.yaml")
    ]
    assert written and server.password not in said
    assert not [p for p in written if server.password in p.read_text(errors="replace")]
    assert not [p for p in (tmp_path / "w2").rglob("*") if p.is_file() and server.password.encode() in p.read_bytes()]
    assert "has a password in it" in out1 and "has a password in it" not in out2


def heartbeat_age(storage: str, study: str) -> float | None:
    """Seconds since the newest heartbeat a worker recorded for a trial of `study` (the database's clock)."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(storage)
    try:
        with engine.connect() as connection:
            query = (
                "SELECT EXTRACT(EPOCH FROM (LOCALTIMESTAMP - max(h.heartbeat))) FROM trial_heartbeats h "
                "JOIN trials t ON t.trial_id = h.trial_id JOIN studies s ON s.study_id = t.study_id "
                "WHERE s.study_name = :study"
            )
            age = connection.execute(sqlalchemy.text(query), {"study": study}).scalar()
    except sqlalchemy.exc.ProgrammingError:  # the worker has not created the schema yet
        return None
    finally:
        engine.dispose()
    return None if age is None else float(age)


def poll(condition, what: str, process: subprocess.Popen | None = None, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process is None or process.poll() is None, f"the worker ended before {what}"
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.1)


@pytest.mark.slow
def test_a_killed_worker_leaves_no_trial_running(server, synthetic, tmp_path):
    storage, beat = (
        server.url(with_password=True),
        ["hydra.sweeper.heartbeat_interval=1", "hydra.sweeper.grace_period=2"],
    )
    doomed = sweep(
        synthetic,
        tmp_path / "killed",
        storage,
        "killed",
        1,
        *beat,
        "trainer.max_epochs=200",
        "trainer.limit_train_batches=1.0",
        "trainer.limit_val_batches=1.0",
    )
    # mid-trial, its heartbeat recorded; then killed, and the heartbeat left to go stale (grace period: 2 s)
    poll(lambda: heartbeat_age(storage, "killed") is not None, "a heartbeat", doomed)
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()
    assert [t.state for t in trials_of(storage, "killed")] == [TrialState.RUNNING]
    poll(lambda: heartbeat_age(storage, "killed") > 2.5, "a stale heartbeat")

    code, out = sweep_here(synthetic, tmp_path / "next", storage, "killed", 1, *beat)
    assert code == 0, out[-3000:]
    assert [t.state for t in trials_of(storage, "killed")] == [TrialState.FAIL, TrialState.COMPLETE]
    assert "trial 0: its worker stopped (no heartbeat); marked FAIL" in out


@pytest.mark.slow
@pytest.mark.parametrize("file", ["study.db", "study.journal"])
def test_two_local_sweeps_share_one_sqlite_or_journal_file(synthetic, tmp_path, file):
    storage = f"sqlite:///{tmp_path / file}" if file.endswith(".db") else str(tmp_path / file)
    workers = [sweep(synthetic, tmp_path / f"w{i}", storage, "local", 4) for i in (1, 2)]
    for code, out in map(finish, workers):
        assert code == 0, out[-3000:]
        assert "database is locked" not in out
    trials = ran(load_study(storage, "local").get_trials())
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4 and len({point(t) for t in trials}) == 4


def create_study_at_once(url: str, barrier) -> str:
    barrier.wait()
    try:
        storage = open_storage(url, 60, 120)
        with_retries(
            functools.partial(optuna.create_study, study_name="raced", storage=storage, load_if_exists=True),
            "create the study",
            url,
        )
        return "ok"
    except Exception as error:
        return f"{type(error).__name__}: {error}"


def create_studies_at_once(url: str) -> list[str]:
    context = multiprocessing.get_context("spawn")
    barrier = context.Manager().Barrier(4)
    with context.Pool(4) as pool:
        return pool.starmap(create_study_at_once, [(url, barrier)] * 4)


@pytest.mark.slow
def test_workers_creating_the_schema_at_once_do_not_crash(tmp_path):
    # Plain optuna.create_study from 4 processes at once on a fresh PostgreSQL database failed 4 times in 4
    # (UniqueViolation on pg_type_typname_nsp_index, or DuplicateTable "studies"); on a fresh SQLite file
    # two sweeps once failed with "table study_directions already exists".
    assert create_studies_at_once(f"sqlite:///{tmp_path / 'fresh.db'}") == ["ok"] * 4
    require_server_binaries()
    with postgres_server() as fresh:  # a fresh server: the schema does not exist yet
        assert create_studies_at_once(fresh.url(with_password=True)) == ["ok"] * 4


def test_masked_hides_the_password_only():
    assert masked("postgresql://mnist:s3cret@db.example:5432/optuna") == "postgresql://mnist:***@db.example:5432/optuna"
    assert masked("postgresql://mnist@db/optuna") == "postgresql://mnist@db/optuna"
    assert masked("sqlite:///outputs/optuna.db") == "sqlite:///outputs/optuna.db"
    assert masked(None) == "memory"


def test_each_worker_and_each_rerun_gets_its_own_seed():
    assert mixed_seed(42, 0) != mixed_seed(42, 3)
    assert mixed_seed(42, 3) == mixed_seed(42, 3)  # same process, same study state: same seed


def make_sweeper(storage=None, **options) -> StudySweeper:
    from omegaconf import OmegaConf

    config = {
        "sampler": OmegaConf.create({"_target_": "optuna.samplers.RandomSampler", "seed": 0}),
        "pruner": OmegaConf.create({"_target_": "optuna.pruners.MedianPruner"}),
        "heartbeat_interval": None,
        "grace_period": None,
        "direction": "maximize",
        "objectives": "val/acc_best",
        "storage": storage,
        "study_name": "s",
        "n_trials": 3,
        "n_jobs": 1,
        "max_failure_rate": 1.0,
        "params": None,
    }
    return StudySweeper(**{**config, **options})


def test_a_point_already_tried_is_not_run_again():
    sweeper = make_sweeper()
    assert sweeper.make_sampler(5)[1] == "seed 0"  # in memory: the configured seed, reproducible
    study = optuna.create_study(direction="maximize")
    study.sampler = sweeper.make_sampler(0)[0]
    space = {"model.channels": CategoricalDistribution([8, 16])}
    first, overrides = sweeper.ask_new_point(study, space, ["seed=1"])
    assert overrides[0].startswith("model.channels=") and overrides[1:] == ["seed=1"]
    study.tell(first, 0.9)
    second, _ = sweeper.ask_new_point(study, space, [])
    assert second.params != first.params  # the sampler may draw the first point again; it is skipped
    study.tell(second, 0.8)
    assert sweeper.ask_new_point(study, space, []) is None  # both points taken: the space is exhausted
    skipped = study.get_trials(states=(TrialState.PRUNED,))
    assert skipped and len(skipped) >= DUPLICATE_ASKS and all("duplicate_of" in t.user_attrs for t in skipped)


def test_a_grid_sampler_is_refused_in_one_line():
    from omegaconf import OmegaConf

    from mnist_exp.errors import ConfigError

    sweeper = make_sweeper()
    sweeper.sampler = OmegaConf.create({"_target_": "optuna.samplers.GridSampler", "_partial_": True})
    with pytest.raises(
        ConfigError, match=r"hydra/sweeper/sampler=grid: use the grid sweeper for grids \(-m key=a,b,c\)"
    ):
        sweeper.sweep([])


def test_the_search_states_the_samplers_settings_whose_defaults_moved_between_optuna_4_and_5():
    """multivariate and constant_liar changed defaults in Optuna 5: the search says both, so that it means
    the same on either; the sweeper builds the sampler from them, seeded by the run's seed."""
    import warnings

    from omegaconf import OmegaConf

    from tests.helpers import compose

    hydra = compose(["hparams_search=optuna", "seed=7"], return_hydra_config=True).hydra
    sampler = OmegaConf.to_container(hydra.sweeper.sampler, resolve=True)
    assert sampler["_target_"] == "optuna.samplers.TPESampler" and sampler["seed"] == 7
    assert sampler["multivariate"] is True and sampler["constant_liar"] is True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # Optuna 4 marks both experimental
        built, why = make_sweeper(sampler=hydra.sweeper.sampler).make_sampler(0)
    assert isinstance(built, optuna.samplers.TPESampler) and why == "seed 7"
