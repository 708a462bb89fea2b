"""What every Hydra command shares: the OmegaConf resolvers its configs use (registered on import,
before Hydra composes anything) and the `command` decorator that makes a function a Hydra app."""

from __future__ import annotations

import atexit
import functools
import gc
import os
from collections.abc import Callable
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import OmegaConf

from mnist_exp import CONFIG_DIR, PROJECT_ROOT, data_home
from mnist_exp.errors import escalated
from mnist_exp.records.logs import quiet_library_warnings, through_the_runs_handlers
from mnist_exp.records.rundirs import first_free


def register_resolvers() -> None:
    # ${working_dir:} -> the dir the command runs in: runs go under it, as in any Hydra app (Hydra keeps it:
    # hydra.job.chdir is false).
    OmegaConf.register_new_resolver("working_dir", os.getcwd, replace=True)
    # ${project_root:} -> the checkout (the working dir for an installed wheel): what run configs saved before the
    # configs moved into the package name as paths.root_dir; a resume or reproduce of such a run reads it.
    OmegaConf.register_new_resolver("project_root", lambda: str(PROJECT_ROOT or os.getcwd()), replace=True)
    # ${data_home:} -> the shared data dir (mnist_exp.data_home: $MNIST_EXP_DATA, a checkout's data/, a cache dir).
    OmegaConf.register_new_resolver("data_home", lambda: str(data_home()), replace=True)
    # ${suffix:TEXT} -> "_TEXT", or "" when TEXT is empty (run dir names built from overrides).
    OmegaConf.register_new_resolver("suffix", dir_suffix, replace=True)
    # ${unique_dir:PATH} -> PATH or PATH-2, ...: the first that does not exist (cached: the same name for
    # the whole run, and for every job of a sweep). Nothing is created: rundirs.ClaimRunDir does that.
    OmegaConf.register_new_resolver("unique_dir", first_free, use_cache=True, replace=True)
    # ${local_artifacts:TRACKING_URI,DIR} -> DIR for a store in a local file (sqlite:, file:), else None: a
    # tracking server keeps artifacts where it is configured to, not on this machine.
    OmegaConf.register_new_resolver("local_artifacts", local_artifacts, replace=True)


def local_artifacts(tracking_uri: str | None, folder: str) -> str | None:
    return folder if str(tracking_uri).startswith(("sqlite:", "file:")) else None


def dir_suffix(overrides: str = "", limit: int = 150) -> str:
    """ "_" and a run's overrides (Hydra's override_dirname, comma-separated) for its dir name, at most
    `limit` characters to stay well inside file-name limits: cut between overrides, never inside one, with
    how many were left out ("..._a=1,b=2,+3 more"); run.json and .hydra/ hold them all."""
    if not overrides:
        return ""
    if len(overrides) < limit:
        return f"_{overrides}"
    parts, kept = overrides.split(","), []
    for part in parts:
        more = f",+{len(parts) - len(kept) - 1} more" if len(kept) + 1 < len(parts) else ""
        if len("_" + ",".join([*kept, part]) + more) > limit:
            break
        kept.append(part)
    return "_" + ",".join(kept) + f"{',' if kept else ''}+{len(parts) - len(kept)} more"


register_resolvers()
# Speed: at exit, Python's cyclic GC walks every object that torch, Lightning and matplotlib created (1.0 s
# of a run's exit on 2 cores); frozen, they are left to the process's end. atexit runs this after the
# command returned, its files and loggers closed.
atexit.register(gc.freeze)


def is_multirun(hydra=None) -> bool:
    """Whether `hydra` (a run's Hydra config; by default the running job's, if any) is a job of a -m sweep."""
    if hydra is None:
        if not HydraConfig.initialized():
            return False
        hydra = HydraConfig.get()
    return hydra.mode == RunMode.MULTIRUN


def command(config_name: str) -> Callable[[Callable[[Any], Any]], Callable[[], Any]]:
    """@hydra.main for mnist_exp/conf/CONFIG_NAME.yaml. In a single run the function's expected errors leave Hydra's
    job runner as they are (Escalated), for the front door to say in one line; in a sweep they stay
    errors of that job, for the sweeper to record."""
    import hydra

    def decorate(task: Callable[[Any], Any]) -> Callable[[], Any]:
        @functools.wraps(task)
        def run_task(cfg):
            quiet_library_warnings()
            through_the_runs_handlers()  # Hydra has set up the job's logging by now
            if not gc.isenabled():  # the first job: start-up is over (see quiet_app)
                gc.freeze()
                gc.enable()
            if is_multirun():
                return task(cfg)
            with escalated():
                return task(cfg)

        app = hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name=config_name)(run_task)

        @functools.wraps(app)
        def quiet_app():
            quiet_library_warnings()  # also for what runs before the jobs: callbacks, the sweeper
            # Speed: start-up (composing, the pre-run check, which imports torch and Lightning) runs without
            # Python's cyclic GC, which walked the growing heap 7 times there (0.6 s on 2 cores); at the first
            # job what start-up made is frozen (never walked again) and the GC runs as usual from then on.
            collecting = gc.isenabled()
            gc.disable()
            try:
                return app()
            finally:
                gc.unfreeze()  # (for a caller that goes on: the test suite runs commands in its own process)
                if collecting:  # as the caller had it
                    gc.enable()
                else:
                    gc.disable()

        return quiet_app

    return decorate


def parse_overrides(overrides) -> list:
    """Override strings (`key=value`, `+key=v`, `~key`, sweeps) as Hydra's own parser reads them."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create().parse_overrides(list(overrides))


def keys_given(cfg) -> set[str]:
    """The keys the command line set (Hydra's parser): from the config's Hydra node, or the running job's."""
    task = OmegaConf.select(cfg, "hydra.overrides.task")
    if task is None and HydraConfig.initialized():
        task = HydraConfig.get().overrides.task
    return {o.key_or_group for o in parse_overrides(task or [])}
