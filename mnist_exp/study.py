"""Optuna studies that many sweep processes share through one database (hydra/sweeper=optuna_study).

Hydra's Optuna sweeper runs one study per process. `OptunaStudySweeper` (hydra_plugins/mnist_exp_optuna)
runs the same ask -> launch -> tell loop, made safe for several workers on one study:

- the storage opens with retries (workers creating the schema or the study at once race), SQLite with
  a busy timeout, and Optuna's heartbeat: a worker killed mid-trial leaves a RUNNING trial whose
  heartbeat stops, and the next worker to start or finish a batch marks it FAIL;
- on a database the sampler's seed is mixed with the worker (host, pid) and the study's trial count,
  so a rerun or another worker does not replay the same points; a trial whose parameters equal a
  finished or running trial's is not launched (PRUNED, system attr `duplicate_of`) and is asked again;
- `n_trials` is how many trials this process runs; job dirs are numbered by trial number;
- the storage URL's password is masked in every line this module logs or writes.
"""

from __future__ import annotations

import functools
import logging
import os
import random
import socket
import sqlite3
import threading
import time
import warnings
import zlib
from collections.abc import Callable
from typing import Any

# optuna 2.x (what hydra-optuna-sweeper allows) needs SQLAlchemy < 2, which warns about 2.0 on import
os.environ.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")
warnings.filterwarnings("ignore", message="Deprecated API features detected")

import optuna
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from optuna.trial import TrialState

from mnist_exp.compat.hydra_optuna_sweeper import OptunaSweeperImpl, create_params_from_overrides
from mnist_exp.errors import StudyError

log = logging.getLogger(__name__)

ATTEMPTS = 6  # tries to open the storage or create the study while other workers race on it
SQLITE_BUSY_TIMEOUT_S = 120  # a second sweep on the same SQLite file waits this long for a lock
DUPLICATE_ASKS = 50  # duplicates in a row before this worker decides the search space is exhausted
LIVE = (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING)  # trials whose points are taken


def masked(url: str | None) -> str:
    """The storage URL with its password replaced by ***."""
    if not url:
        return "memory"
    from sqlalchemy.engine.url import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy can parse: show its scheme only
        return url.split("://", 1)[0] + "://***"


def has_password(url: str) -> bool:
    from sqlalchemy.engine.url import make_url

    try:
        return bool(make_url(url).password)
    except Exception:
        return "@" in url


# SQLite says a locked file (BUSY, LOCKED) and a schema another worker just created (a plain ERROR,
# "table ... already exists") as OperationalError; its error code tells them apart from the rest.
SQLITE_RACES = ("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_ERROR")


def sqlite_race(error: BaseException | None) -> bool:
    return isinstance(error, sqlite3.Error) and getattr(error, "sqlite_errorname", None) in SQLITE_RACES


def with_retries(action: Callable[[], Any], what: str, url: str) -> Any:
    """Run action, retrying when workers race on the database (schema or study created twice, a locked file)."""
    from sqlalchemy.exc import IntegrityError, ProgrammingError, SQLAlchemyError

    for attempt in range(1, ATTEMPTS + 1):
        try:
            return action()
        except (SQLAlchemyError, optuna.exceptions.StorageInternalError) as error:
            cause = error if isinstance(error, SQLAlchemyError) else (error.__cause__ or error)
            first_line = (str(getattr(cause, "orig", None) or cause).strip().splitlines() or [type(cause).__name__])[0]
            racing = isinstance(cause, (IntegrityError, ProgrammingError)) or sqlite_race(getattr(cause, "orig", None))
            if not racing or attempt == ATTEMPTS:
                raise StudyError(f"hydra.sweeper.storage={masked(url)}: cannot {what}: {first_line}") from None
            log.info("%s: another worker got there first, retrying (%s)", what, first_line)
            time.sleep(random.uniform(0.1, 0.5) * attempt)


def open_storage(url: str, heartbeat_interval: int | None, grace_period: int | None) -> optuna.storages.RDBStorage:
    """The study's database, with a heartbeat so that a killed worker's trial does not stay RUNNING."""
    engine_kwargs = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}} if url.startswith("sqlite") else {}
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # heartbeat is stable since 3.x
    try:
        return with_retries(
            lambda: optuna.storages.RDBStorage(
                url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat_interval, grace_period=grace_period
            ),
            "open the study database",
            url,
        )
    except ImportError:
        raise StudyError(f"hydra.sweeper.storage={masked(url)}: no database driver for it is installed") from None


def mixed_seed(seed: int | None, trials_so_far: int) -> int:
    """A seed of its own for this worker: the configured seed, this host and process, the study's size."""
    token = f"{seed}:{socket.gethostname()}:{os.getpid()}:{trials_so_far}"
    return zlib.crc32(token.encode())


def fail_stale_trials(study: optuna.Study, url: str) -> None:
    """Mark FAIL the RUNNING trials whose worker stopped sending heartbeats (it was killed)."""
    before = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    with_retries(lambda: optuna.storages.fail_stale_trials(study), "check for stale trials", url)
    after = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    for number in sorted(before - after):
        log.warning("trial %d: its worker stopped (no heartbeat); marked FAIL", number)


def trial_id(storage: optuna.storages.BaseStorage, study: optuna.Study, trial: optuna.Trial) -> int:
    """The storage's id of a trial (what heartbeats are recorded by), through the storage's public API."""
    study_id = storage.get_study_id_from_name(study.study_name)
    return storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)


def beats(storage: optuna.storages.BaseStorage | None) -> bool:
    """Whether trials record heartbeats: a database storage opened with a heartbeat interval."""
    return storage is not None and storage.is_heartbeat_enabled()


class Heartbeat:
    """Records a heartbeat for the trials being run, every heartbeat interval, in a background thread."""

    def __init__(self, storage: optuna.storages.BaseStorage | None, study: optuna.Study, trials: list[optuna.Trial]):
        self.storage = storage
        self.trial_ids = [trial_id(storage, study, t) for t in trials] if beats(storage) else []
        self.interval = storage.get_heartbeat_interval() if beats(storage) else None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.beat, daemon=True, name="optuna-heartbeat")

    def beat(self) -> None:
        while True:
            for trial_id in self.trial_ids:
                try:
                    self.storage.record_heartbeat(trial_id)
                except Exception as error:  # a lost connection must not kill the running jobs
                    log.warning("heartbeat not recorded: %s", str(error).splitlines()[0])
            if self.stop.wait(self.interval):
                return

    def __enter__(self) -> Heartbeat:
        if self.interval:
            self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join()


def consecutive_runs(trials: list[tuple]) -> list[list[tuple]]:
    """Split (trial, overrides) pairs into runs of consecutive trial numbers: each job is numbered by its trial."""
    runs: list[list[tuple]] = []
    for pair in trials:
        if runs and runs[-1][-1][0].number + 1 == pair[0].number:
            runs[-1].append(pair)
        else:
            runs.append([pair])
    return runs


class OptunaStudySweeperImpl(OptunaSweeperImpl):
    def __init__(self, sampler: DictConfig, heartbeat_interval: int | None, grace_period: int | None, **kwargs):
        super().__init__(sampler=sampler, **kwargs)  # keeps storage (the URL, or None: in memory)
        self.heartbeat_interval, self.grace_period = heartbeat_interval, grace_period
        self.rdb: optuna.storages.RDBStorage | None = None  # the database storage, once open_study opened it

    def make_sampler(self, trials_so_far: int) -> tuple[Any, str]:
        """The sampler and a line on its seed: on a database, a seed of this worker's own."""
        config = self.sampler
        if "seed" not in config:
            return instantiate(config), "no seed"
        if self.storage is None:
            return instantiate(config), f"seed {config.seed}"
        seed = mixed_seed(config.seed, trials_so_far)
        why = f"seed {seed} (seed={config.seed} mixed with this worker and the study's {trials_so_far} trials so far)"
        return instantiate(config, seed=seed), why

    def open_study(self, directions: list[str]) -> optuna.Study:
        storage = self.rdb = None
        if self.storage is not None:
            if has_password(self.storage):
                log.warning(
                    "hydra.sweeper.storage has a password in it: masked in what mnist-exp logs, but Hydra keeps "
                    "the command line in each job's .hydra/hydra.yaml; set PGPASSWORD (or ~/.pgpass) instead"
                )
            storage = self.rdb = open_storage(self.storage, self.heartbeat_interval, self.grace_period)
        create = functools.partial(
            optuna.create_study, study_name=self.study_name, storage=storage, directions=directions, load_if_exists=True
        )
        study = with_retries(create, f"create or load study {self.study_name!r}", self.storage or "")
        if storage is not None:
            fail_stale_trials(study, self.storage)
        so_far = len(study.get_trials(deepcopy=False))
        sampler, seed_line = self.make_sampler(so_far)
        study.sampler = sampler
        log.info(
            "Study %r in %s: %d trials so far; sampler %s, %s",
            study.study_name,
            masked(self.storage),
            so_far,
            type(sampler).__name__,
            seed_line,
        )
        return study

    def ask_new_point(self, study: optuna.Study, distributions: dict, fixed_params: dict) -> tuple | None:
        """(trial, its overrides) with parameters no finished or running trial has; None if the space seems
        exhausted."""
        for _ in range(DUPLICATE_ASKS):
            trial = study.ask()
            (overrides,) = self._configure_trials([trial], distributions, fixed_params)
            trial.set_system_attr("mnist_exp:worker", f"{socket.gethostname()}:{os.getpid()}")
            twin = next(
                (
                    t
                    for t in study.get_trials(deepcopy=False, states=LIVE)
                    if t.number != trial.number and t.params == trial.params
                ),
                None,
            )
            if twin is None or not trial.params:
                if beats(self.rdb):
                    self.rdb.record_heartbeat(trial_id(self.rdb, study, trial))
                return trial, overrides
            trial.set_system_attr("duplicate_of", twin.number)
            study.tell(trial, state=TrialState.PRUNED)
            log.info("trial %d: same parameters as trial %d; not run, asking again", trial.number, twin.number)
        return None

    def sweep(self, arguments: list[str]) -> None:
        self._process_searchspace_config()
        distributions, fixed_params = create_params_from_overrides([*self._parse_sweeper_params_config(), *arguments])
        for name in fixed_params:
            distributions.pop(name, None)
        if self.sampler.get("_target_") == "optuna.samplers.GridSampler":
            raise StudyError("hydra/sweeper/sampler=grid: use the basic sweeper for grids (-m key=a,b,c)")
        directions = self._get_directions()
        study = self.open_study(directions)

        to_go = self.n_trials
        while to_go > 0:
            asked = [self.ask_new_point(study, distributions, fixed_params) for _ in range(min(self.n_jobs, to_go))]
            trials = [pair for pair in asked if pair]
            if not trials:
                log.warning(
                    "%d asks in a row gave parameters already tried: the search space is exhausted", DUPLICATE_ASKS
                )
                break
            self.run_trials(study, trials, directions)
            to_go -= len(trials)
            if beats(self.rdb):
                fail_stale_trials(study, self.storage)
        self.save_results(study, directions)

    def run_trials(self, study: optuna.Study, trials: list[tuple], directions: list[str]) -> None:
        """Launch (trial, overrides) pairs, each job numbered by its trial, and tell the study their values."""
        returns = []
        with Heartbeat(self.rdb, study, [trial for trial, _ in trials]):
            for run in consecutive_runs(trials):
                returns += self.launcher.launch([overrides for _, overrides in run], initial_job_idx=run[0][0].number)
        failures = []
        for (trial, _), ret in zip(trials, returns, strict=False):
            trial.set_system_attr("mnist_exp:run_dir", str(ret.working_dir))
            try:
                value = ret.return_value
                values = [float(v) for v in value] if len(directions) > 1 else [float(value)]
                study.tell(trial, values=values)
            except Exception as error:
                study.tell(trial, state=TrialState.FAIL)
                log.warning(
                    "trial %d failed: %s",
                    trial.number,
                    str(error).splitlines()[0] if str(error) else type(error).__name__,
                )
                failures.append(error)
        if failures and len(failures) / len(returns) > self.max_failure_rate:
            for ret in returns:
                _ = ret.return_value  # raises the first failed job's error, with its traceback

    def save_results(self, study: optuna.Study, directions: list[str]) -> None:
        done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if not done:
            log.warning("no trial of study %r has finished yet", study.study_name)
            return
        if len(directions) < 2:
            best = study.best_trial
            results = {
                "name": "optuna",
                "study_name": study.study_name,
                "best_trial": best.number,
                "best_params": best.params,
                "best_value": best.value,
            }
            log.info("Best of the study so far: trial %d, value %s, %s", best.number, best.value, best.params)
        else:
            results = {
                "name": "optuna",
                "study_name": study.study_name,
                "solutions": [{"params": t.params, "values": t.values} for t in study.best_trials],
            }
        OmegaConf.save(OmegaConf.create(results), f"{self.config.hydra.sweep.dir}/optimization_results.yaml")


STUDY_COLUMNS = ["trial", "state", "value", "params", "worker", "run_dir"]


def study_rows(storage_url: str, study_name: str) -> list[dict]:
    """Every trial of a study, from the database: the whole search over all its workers."""
    storage = open_storage(storage_url, None, None)
    try:
        study = with_retries(
            lambda: optuna.load_study(study_name=study_name, storage=storage), "load the study", storage_url
        )
    except KeyError:
        raise StudyError(f"no study named {study_name!r} in {masked(storage_url)}") from None
    rows = []
    for trial in study.get_trials(deepcopy=False):
        state = trial.state.name.lower()
        if "duplicate_of" in trial.system_attrs:
            state = f"skipped: same as trial {trial.system_attrs['duplicate_of']}"
        rows.append(
            {
                "trial": trial.number,
                "state": state,
                "value": "" if trial.value is None else round(trial.value, 6),
                "params": ",".join(f"{k}={v}" for k, v in trial.params.items()),
                "worker": trial.system_attrs.get("mnist_exp:worker", ""),
                "run_dir": trial.system_attrs.get("mnist_exp:run_dir", ""),
            }
        )
    return rows
