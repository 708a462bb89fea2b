"""The Optuna sweeper (hydra/sweeper=optuna_study, what hparams_search=optuna uses): ask -> launch -> tell
on Optuna's public API, safe for many workers sharing one study.

- `n_trials` is the study's total: a worker asks trials until the study holds that many that ran to an
  end, so an interrupted search run again (or a second worker) continues it to n_trials, not n_trials more;
  each batch of `n_jobs` trials goes to Hydra's launcher (basic, joblib, submitit) as jobs numbered by
  their trial number, so a job finds its trial (mnist_exp/study/pruning.py) and job dirs never collide;
- a trial left RUNNING by a killed worker (a process of this host that is gone, or one whose heartbeats
  stopped) is marked FAIL and its parameters are asked again (user attr `retry_of`);
- a job's value is the run's metrics named by `objectives` (one per direction); a job the pruner
  stopped (status `pruned`) is told PRUNED, a job that failed FAIL;
- on a database the sampler's seed is mixed with the worker (host, pid) and the study's trial count,
  so a rerun or another worker does not replay the same points; a trial whose parameters equal a
  finished or running trial's is not launched (PRUNED, user attr `duplicate_of`) and is asked again;
- a database storage records heartbeats while trials run: a killed worker's RUNNING trial is marked FAIL
  by the next worker; the storage URL's password is masked in every line logged or written.
"""

from __future__ import annotations

import logging
import os
import socket
import zlib
from pathlib import Path
from typing import Any

import optuna
from hydra.core.plugins import Plugins
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf
from optuna.trial import TrialState

from mnist_exp.errors import ConfigError, first_line
from mnist_exp.study import RUN_DIR
from mnist_exp.study.report import best_lines, results
from mnist_exp.study.space import search_space, trial_overrides
from mnist_exp.study.storage import (
    Heartbeat,
    fail_stale_trials,
    has_password,
    location,
    masked,
    open_storage,
    with_retries,
)

log = logging.getLogger(__name__)

DUPLICATE_ASKS = 50  # duplicates in a row before this worker decides the search space is exhausted
LIVE = (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING)  # trials whose points are taken
WORKER = "mnist_exp:worker"
BEYOND = "beyond_n_trials"  # a trial asked when the study already had n_trials (two workers at once): not run


def ran(trial: optuna.trial.FrozenTrial) -> bool:
    """Whether a trial ran to an end (completed, pruned or failed in its job): what n_trials counts."""
    return RUN_DIR in trial.user_attrs and trial.state.is_finished()


def gone(worker: str) -> bool:
    """Whether `worker` (host:pid) was a process of this host that no longer runs."""
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another host's worker (heartbeats tell), or none recorded
    if int(pid) == os.getpid():
        return True  # this process asks no trial before it looks: that was an earlier process with its pid
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # another user's live process
        return False
    return False


def mixed_seed(seed: int | None, trials_so_far: int) -> int:
    """A seed of its own for this worker: the configured seed, this host and process, the study's size."""
    token = f"{seed}:{socket.gethostname()}:{os.getpid()}:{trials_so_far}"
    return zlib.crc32(token.encode())


def as_list(value: Any) -> list:
    return list(value) if isinstance(value, (list, tuple, ListConfig)) else [value]


def consecutive_runs(trials: list[tuple]) -> list[list[tuple]]:
    """Split (trial, overrides) pairs into runs of consecutive trial numbers: each job is numbered by its trial."""
    runs: list[list[tuple]] = []
    for pair in trials:
        if runs and runs[-1][-1][0].number + 1 == pair[0].number:
            runs[-1].append(pair)
        else:
            runs.append([pair])
    return runs


class StudySweeper:
    def __init__(
        self,
        sampler: DictConfig,
        pruner: DictConfig,
        direction: str | list[str],
        objectives: str | list[str],
        study_name: str,
        storage: str | None,
        n_trials: int,
        n_jobs: int,
        max_failure_rate: float,
        heartbeat_interval: int | None,
        grace_period: int | None,
        params: DictConfig | None,
    ):
        self.sampler, self.pruner, self.params = sampler, pruner, params
        self.directions, self.objectives = as_list(direction), as_list(objectives)
        self.study_name, self.storage = study_name, storage
        self.n_trials, self.n_jobs, self.max_failure_rate = n_trials, n_jobs, max_failure_rate
        self.heartbeat_interval, self.grace_period = heartbeat_interval, grace_period
        if len(self.objectives) != len(self.directions):
            raise ConfigError(
                f"hydra.sweeper.objectives has {len(self.objectives)} metrics and hydra.sweeper.direction "
                f"{len(self.directions)}: give one direction per objective"
            )
        if len(self.directions) > 1 and not isinstance(instantiate(pruner), optuna.pruners.NopPruner):
            raise ConfigError(
                f"a pruner stops trials by one objective; with {len(self.directions)} objectives "
                "use hydra/sweeper/pruner=none"
            )

    def setup(self, *, hydra_context, task_function, config: DictConfig) -> None:
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )
        self.url = location(self.storage, config.hydra.sweep.dir)
        self.storage_opened = None  # the storage the study lives in, once open_study opened it

    def make_sampler(self, trials_so_far: int) -> tuple[Any, str]:
        """The sampler and a line on its seed: on a shared storage, a seed of this worker's own."""
        config = self.sampler
        if config.get("seed") is None:
            return instantiate(config), "no seed"
        if self.storage is None:
            return instantiate(config), f"seed {config.seed}"
        seed = mixed_seed(config.seed, trials_so_far)
        why = f"seed {seed} (seed={config.seed} mixed with this worker and the study's {trials_so_far} trials so far)"
        return instantiate(config, seed=seed), why

    def open_study(self) -> optuna.Study:
        if self.storage and has_password(self.storage):
            log.warning(
                "hydra.sweeper.storage has a password in it: masked in what mnist-exp logs, but Hydra keeps "
                "the command line in each job's .hydra/hydra.yaml; set PGPASSWORD (or ~/.pgpass) instead"
            )
        storage = open_storage(self.url, self.heartbeat_interval, self.grace_period)
        study = with_retries(
            lambda: optuna.create_study(
                study_name=self.study_name,
                storage=storage,
                directions=self.directions,
                pruner=instantiate(self.pruner),
                load_if_exists=True,
            ),
            f"create or load study {self.study_name!r}",
            self.url,
        )
        if study.directions != [optuna.study.StudyDirection[d.upper()] for d in self.directions]:
            raise ConfigError(
                f"study {self.study_name!r} in {masked(self.url)} has directions "
                f"{[d.name.lower() for d in study.directions]}, not {self.directions}"
            )
        study.set_metric_names(self.objectives)
        self.ask_again(study, fail_stale_trials(study, self.url) + self.fail_orphans(study))
        so_far = len(study.get_trials(deepcopy=False))
        study.sampler, seed_line = self.make_sampler(so_far)
        log.info(
            "Study %r in %s: %d trials so far; sampler %s, %s; pruner %s",
            study.study_name,
            masked(self.url),
            so_far,
            type(study.sampler).__name__,
            seed_line,
            type(study.pruner).__name__,
        )
        self.storage_opened = storage
        return study

    def fail_orphans(self, study: optuna.Study) -> list[int]:
        """Mark FAIL the RUNNING trials of a worker on this host that is gone (killed, so it told nothing);
        storages without heartbeats (the sweep dir's journal) learn it no other way. Their numbers."""
        orphans = [
            t.number
            for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if gone(t.user_attrs.get(WORKER, ""))
        ]
        for number in orphans:
            study.tell(number, state=TrialState.FAIL)
            log.warning("trial %d: its worker is gone (killed); marked FAIL", number)
        return orphans

    def ask_again(self, study: optuna.Study, numbers: list[int]) -> None:
        """Queue the parameters of trials a killed worker left, so the search asks them again."""
        trials = {t.number: t for t in study.get_trials(deepcopy=False)}
        for number in numbers:
            study.enqueue_trial(trials[number].params, user_attrs={"retry_of": number})
            log.info("trial %d: its parameters asked again", number)

    def to_go(self, study: optuna.Study) -> int:
        """Trials still to ask: n_trials less those that ran to an end and those running now (any worker's)."""
        trials = study.get_trials(deepcopy=False)
        return self.n_trials - sum(map(ran, trials)) - sum(t.state == TrialState.RUNNING for t in trials)

    def beyond_n_trials(self, study: optuna.Study, trial: optuna.Trial) -> bool:
        """Whether the study had n_trials ran or running before `trial` was asked (two workers asking at once):
        the earlier trial numbers win, so every worker decides alike. Such a trial is told PRUNED, not run."""
        earlier = [t for t in study.get_trials(deepcopy=False) if t.number < trial.number]
        if sum(ran(t) or t.state == TrialState.RUNNING for t in earlier) < self.n_trials:
            return False
        trial.set_user_attr(BEYOND, True)
        study.tell(trial, state=TrialState.PRUNED)
        return True

    def ask_new_point(self, study: optuna.Study, distributions: dict, fixed: list[str]) -> tuple | None:
        """(trial, its overrides) with parameters no finished or running trial has; None if the space seems
        exhausted."""
        for _ in range(DUPLICATE_ASKS):
            trial = study.ask(distributions)
            trial.set_user_attr(WORKER, f"{socket.gethostname()}:{os.getpid()}")
            twin = next(
                (
                    t
                    for t in study.get_trials(deepcopy=False, states=LIVE)
                    if t.number != trial.number and t.params == trial.params
                ),
                None,
            )
            if twin is None or not trial.params:
                return trial, trial_overrides(trial.params, fixed)
            trial.set_user_attr("duplicate_of", twin.number)
            study.tell(trial, state=TrialState.PRUNED)
            log.info("trial %d: same parameters as trial %d; not run, asking again", trial.number, twin.number)
        return None

    def sweep(self, arguments: list[str]) -> None:
        distributions, fixed = search_space(self.params, arguments)
        if issubclass(get_class(self.sampler._target_), optuna.samplers.GridSampler):  # (built later, with its grid)
            raise ConfigError("hydra/sweeper/sampler=grid: use the grid sweeper for grids (-m key=a,b,c)")
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")  # as Hydra's basic sweeper does
        study = self.open_study()
        while (to_go := self.to_go(study)) > 0:
            asked = [self.ask_new_point(study, distributions, fixed) for _ in range(min(self.n_jobs, to_go))]
            trials = [pair for pair in asked if pair]
            if not trials:
                log.warning(
                    "%d asks in a row gave parameters already tried: the search space is exhausted", DUPLICATE_ASKS
                )
                break
            trials = [pair for pair in trials if not self.beyond_n_trials(study, pair[0])]
            if not trials:
                break  # another worker took the last ones
            self.run_trials(study, trials)
            self.ask_again(study, fail_stale_trials(study, self.url))
        self.save_results(study)

    def run_trials(self, study: optuna.Study, trials: list[tuple]) -> None:
        """Launch (trial, overrides) pairs, each job numbered by its trial, and tell the study how each ended."""
        returns = []
        with Heartbeat(self.storage_opened, study.study_name, [trial.number for trial, _ in trials]):
            for run in consecutive_runs(trials):
                returns += self.launcher.launch([overrides for _, overrides in run], initial_job_idx=run[0][0].number)
        failures = []
        for (trial, _), ret in zip(trials, returns, strict=True):
            trial.set_user_attr(RUN_DIR, str(ret.hydra_cfg.hydra.runtime.output_dir))
            try:
                metrics = ret.return_value
                if metrics["status"] == "failed":  # the job recorded its error and returned it (train.main)
                    raise metrics["error"]
                if metrics["status"] == "pruned":  # its job stopped when the pruner said so
                    study.tell(trial, state=TrialState.PRUNED)
                    log.info("trial %d pruned after epoch %d", trial.number, metrics["pruned_at_epoch"])
                else:
                    study.tell(trial, values=[float(metrics[name]) for name in self.objectives])
            except Exception as error:
                study.tell(trial, state=TrialState.FAIL)
                log.warning("trial %d failed: %s", trial.number, first_line(error))
                failures.append(error)
        if failures and len(failures) / len(returns) > self.max_failure_rate:
            raise failures[0]

    def save_results(self, study: optuna.Study) -> None:
        for line in best_lines(study):
            log.info("%s", line)
        summary = results(study, masked(self.url))
        OmegaConf.save(OmegaConf.create(summary), f"{self.config.hydra.sweep.dir}/optimization_results.yaml")
