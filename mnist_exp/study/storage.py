"""Where an Optuna study lives, opened safely by many workers at once.

`hydra.sweeper.storage` is a database URL (`sqlite:///FILE`, `postgresql://USER@HOST/DB`), a journal file
(any path without `://`: Optuna's JournalStorage, one file a cluster's shared file system can hold), or
null: then the study is kept in `optuna.journal` in the sweep dir, so that jobs in other processes
(joblib, submitit) can report to their trial and optuna-dashboard can watch it. Workers racing to create
the schema or the study retry; SQLite waits for locks; a database storage records heartbeats.
"""

from __future__ import annotations

import functools
import logging
import random
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend

from mnist_exp.errors import StudyError, first_line
from mnist_exp.study import RUN_DIR

log = logging.getLogger(__name__)

ATTEMPTS = 6  # tries to open the storage or create the study while other workers race on it
SQLITE_BUSY_TIMEOUT_S = 120  # a second sweep on the same SQLite file waits this long for a lock
SWEEP_JOURNAL = "optuna.journal"  # the study of a sweep given no storage, in its sweep dir


def location(storage: str | None, sweep_dir: str | Path) -> str:
    """The storage a sweep's study lives in: the configured one, or the journal file in the sweep dir."""
    return storage or str(Path(sweep_dir) / SWEEP_JOURNAL)


def is_database(url: str) -> bool:
    return "://" in url


def masked(url: str | None) -> str:
    """The storage URL with its password replaced by ***."""
    if not url:
        return "memory"
    if not is_database(url):
        return url
    from sqlalchemy.engine.url import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy can parse: show its scheme only
        return url.split("://", 1)[0] + "://***"


def has_password(url: str) -> bool:
    if not is_database(url):
        return False
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
            said = first_line(getattr(cause, "orig", None) or cause)
            racing = isinstance(cause, (IntegrityError, ProgrammingError)) or sqlite_race(getattr(cause, "orig", None))
            if not racing or attempt == ATTEMPTS:
                raise StudyError(f"hydra.sweeper.storage={masked(url)}: cannot {what}: {said}") from None
            log.info("%s: another worker got there first, retrying (%s)", what, said)
            time.sleep(random.uniform(0.1, 0.5) * attempt)


@functools.cache
def open_storage(
    url: str, heartbeat_interval: int | None = None, grace_period: int | None = None
) -> optuna.storages.BaseStorage:
    """The study's storage, opened once per process (a sweep and the jobs it runs in its own process share
    it): a database with a heartbeat, so that a killed worker's trial does not stay RUNNING, or a journal."""
    if not is_database(url):
        Path(url).parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(url))
    engine_kwargs = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}} if url.startswith("sqlite") else {}
    try:
        return with_retries(
            lambda: RDBStorage(
                url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat_interval, grace_period=grace_period
            ),
            "open the study database",
            url,
        )
    except ImportError:
        raise StudyError(f"hydra.sweeper.storage={masked(url)}: no database driver for it is installed") from None


def load_study(url: str, study_name: str, **options) -> optuna.Study:
    """An existing study, by name (options: Optuna's pruner or sampler for it)."""
    storage = open_storage(url)
    try:
        return with_retries(
            lambda: optuna.load_study(study_name=study_name, storage=storage, **options), "load the study", url
        )
    except KeyError:
        raise StudyError(f"no study named {study_name!r} in {masked(url)}") from None


def trial_id(storage: optuna.storages.BaseStorage, study_name: str, number: int) -> int:
    """The storage's id of trial `number` of a study (what heartbeats and reports are recorded by)."""
    return storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(study_name), number)


def beats(storage: optuna.storages.BaseStorage | None) -> bool:
    """Whether trials record heartbeats: a database storage opened with a heartbeat interval."""
    return isinstance(storage, RDBStorage) and bool(storage.get_heartbeat_interval())


def fail_stale_trials(study: optuna.Study, url: str) -> list[int]:
    """Mark FAIL the RUNNING trials whose worker stopped sending heartbeats (it was killed); their numbers.
    (Not those another worker finished meanwhile, nor one it told FAIL: their jobs returned, RUN_DIR says.)"""
    running = (optuna.trial.TrialState.RUNNING,)
    before = {t.number for t in study.get_trials(deepcopy=False, states=running)}
    with_retries(lambda: optuna.storages.fail_stale_trials(study), "check for stale trials", url)
    failed = (optuna.trial.TrialState.FAIL,)
    trials = study.get_trials(deepcopy=False, states=failed)
    stale = [t.number for t in trials if t.number in before and RUN_DIR not in t.user_attrs]
    for number in stale:
        log.warning("trial %d: its worker stopped (no heartbeat); marked FAIL", number)
    return stale


class Heartbeat:
    """Records a heartbeat for the trials being run (by number, in a study), every heartbeat interval, in a
    background thread; nothing where the storage records none."""

    def __init__(self, storage: optuna.storages.BaseStorage, study_name: str, numbers: list[int]):
        self.storage = storage
        self.trial_ids = [trial_id(storage, study_name, number) for number in numbers] if beats(storage) else []
        self.interval = storage.get_heartbeat_interval() if beats(storage) else None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.beat, daemon=True, name="optuna-heartbeat")

    def beat(self) -> None:
        while True:
            for running in self.trial_ids:
                try:
                    self.storage.record_heartbeat(running)
                except Exception as error:  # a lost connection must not kill the running jobs
                    log.warning("heartbeat not recorded: %s", first_line(error))
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
