"""Run dirs: claiming them (ClaimRunDir), finding their checkpoints, knowing which run is still going,
writing results.

A training run holds a lock on its dir for its whole life (`hold_run_lock`); the OS releases it when
the process ends, however it ends. `ckpt_path=last` skips runs whose lock is held, and resuming a
checkpoint of a running run is refused, so no two processes ever write into one run dir.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from filelock import FileLock, Timeout
from hydra.experimental.callback import Callback

from mnist_exp.compat.omegaconf import forget
from mnist_exp.errors import CheckpointError, ConfigError, escalated, one_line

RUN_LOCK = ".running.lock"
_held_here: set[Path] = set()  # run dirs this process holds (its own run is not "another running run")
# One lock file per process that is training or testing right now, on this machine and for this user,
# wherever its run dir is: what runs count to share the CPU (callbacks.ShareTheCPU).
_training_lock: list[FileLock] = []  # this process's training lock, once per block that holds it
TRAINING_NOW = Path(tempfile.gettempdir()) / f"mnist-exp-{getattr(os, 'getuid', lambda: 'user')()}" / "training"
STALE_AFTER = 10.0  # seconds: an unheld lock file this old was left by a process that ended without removing it


SWEEP_RECORD = "sweep.json"  # in a sweep dir: each start of the sweep (its command, when it started and ended)


def sweep_record(sweep_dir: Path) -> dict:
    """A sweep dir's sweep.json ({"starts": [...]}); an empty one for a sweep made before it was written."""
    try:
        record = json.loads((Path(sweep_dir) / SWEEP_RECORD).read_text())
    except (OSError, ValueError):
        return {"starts": []}
    return record if isinstance(record, dict) and isinstance(record.get("starts"), list) else {"starts": []}


def newest_interrupted_sweep(log_dir: Path) -> Path:
    """The newest sweep dir under log_dir/multirun whose last start did not end (killed, stopped, a crash)."""
    found = []
    for record_file in Path(log_dir).glob(f"multirun/*/*/{SWEEP_RECORD}"):
        starts = sweep_record(record_file.parent)["starts"]
        if starts and starts[-1].get("ended") is None and starts[-1].get("command"):
            found.append((str(starts[-1].get("at")), record_file.parent))
    if not found:
        raise ConfigError(f"hydra.sweep.dir=last: no interrupted sweep under {Path(log_dir) / 'multirun'}")
    return max(found)[1]


def first_free(path: str) -> str:
    """`path`, or else `path-2`, `path-3`, ...: the first name that does not exist yet. Nothing is created
    here (this is the `${unique_dir:PATH}` resolver); ClaimRunDir creates it."""
    candidate, number = Path(path), 1
    while candidate.exists():
        number += 1
        candidate = Path(f"{path}-{number}")
    return str(candidate)


def claim_dir(config, key: str) -> Path:
    """Create the dir that `key` (hydra.run.dir or hydra.sweep.dir) names, before Hydra would. A name from
    `${unique_dir:...}` must be new: mkdir is atomic, so when another run took the name since it was
    chosen, the name is chosen again (PATH-2, ...). Any other name (a resumed run's, a DDP rank's, one
    given on the command line) may already exist."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    HydraConfig.instance().set_config(config)  # for ${hydra:...} in the name, as Hydra does before it resolves it
    parent, _, leaf = key.rpartition(".")
    unique = "${unique_dir:" in str(OmegaConf.to_container(OmegaConf.select(config, parent), resolve=False)[leaf])
    while True:
        path = Path(OmegaConf.select(config, key))
        try:
            path.mkdir(parents=True, exist_ok=not unique)
            return path
        except FileExistsError:
            forget(config, "unique_dir")  # taken meanwhile: resolve the name again


class ClaimRunDir(Callback):
    """Claims the run's dir (or the sweep's) right after the config check, before Hydra creates it, so two
    runs started in the same second never share a dir. Sweep jobs inherit the claimed name: Hydra copies
    the resolver cache into every job's config."""

    def on_run_start(self, config, **kwargs) -> None:
        with escalated():
            claim_dir(config, "hydra.run.dir")

    def on_multirun_start(self, config, **kwargs) -> None:
        with escalated():
            claim_dir(config, "hydra.sweep.dir")


def is_ddp_helper_process() -> bool:
    """One of the extra processes Lightning's DDP starts: it works in rank 0's run dir, under rank 0's lock."""
    return os.environ.get("LOCAL_RANK", "0") != "0" or os.environ.get("NODE_RANK", "0") != "0"


@contextmanager
def hold_run_lock(run_dir: Path) -> Iterator[None]:
    """Mark `run_dir` as running for as long as the block lasts (and no longer than the process)."""
    if is_ddp_helper_process():
        yield
        return
    lock = FileLock(str(Path(run_dir) / RUN_LOCK))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise ConfigError(f"{run_dir} is in use by another running process; wait for it to end") from None
    _held_here.add(Path(run_dir).resolve())
    try:
        yield
    finally:
        _held_here.discard(Path(run_dir).resolve())
        lock.release()


@contextmanager
def counted_as_training() -> Iterator[None]:
    """Count this process among those training on this machine for as long as the block lasts (and no
    longer than the process: the OS releases the lock however it ends). Blocks may nest: the process
    counts once."""
    if not _training_lock:
        TRAINING_NOW.mkdir(parents=True, exist_ok=True)
        # a name no other process ever opens to lock (a pid comes back), so a stale one can go (processes_training)
        lock = FileLock(str(TRAINING_NOW / f"{os.getpid()}-{uuid.uuid4().hex[:8]}.lock"))
        lock.acquire(timeout=0)
        _training_lock.append(lock)
    else:
        _training_lock.append(_training_lock[0])
    try:
        yield
    finally:
        lock = _training_lock.pop()
        if not _training_lock:
            lock.release()
            Path(lock.lock_file).unlink(missing_ok=True)


def processes_training() -> int:
    """How many processes hold a training lock now (this one included when it does). The lock file of a process
    that ended without removing it (killed) is removed once it is STALE_AFTER seconds old: a run counts every 10
    batches, and a register that only grew made each count slower (22 files: 3 ms a count)."""
    if not TRAINING_NOW.is_dir():
        return 0
    held = 0
    for path in TRAINING_NOW.glob("*.lock"):
        if held_by_a_process(path):
            held += 1
        else:
            with suppress(OSError):  # (gone meanwhile: its owner ended; or a register this user cannot write)
                if time.time() - path.stat().st_mtime > STALE_AFTER:  # (an owner locks its file as it makes it)
                    path.unlink()
    return held


def held_by_a_process(path: Path) -> bool:
    """Whether a live process holds the lock file `path` (this one's own locks count: it cannot take them
    twice). A file that cannot be locked (gone meanwhile, a read-only dir) is held by no one."""
    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return True
    except OSError:
        return False
    lock.release()
    return False


def is_running(run_dir: Path) -> bool:
    """Whether a live process holds `run_dir`'s run lock."""
    path = Path(run_dir) / RUN_LOCK
    if not path.exists() or Path(run_dir).resolve() in _held_here or is_ddp_helper_process():
        return False
    return held_by_a_process(path)


def run_dir_of(checkpoint: Path) -> Path | None:
    """RUN for RUN/checkpoints/NAME.ckpt, when RUN holds a Hydra run's .hydra/overrides.yaml."""
    run_dir = checkpoint.parent.parent
    return run_dir if (run_dir / ".hydra" / "overrides.yaml").is_file() else None


def finished(run_dir: Path) -> bool:
    """Whether a run ended with its results (metrics.json): a stopped or failed run has none."""
    return (Path(run_dir) / "metrics.json").is_file()


def best_checkpoint(log_dir: Path) -> Path:
    """The checkpoint that the finished run (or sweep job) under log_dir with the highest best validation
    accuracy tested (the newest of a tie): what a learner means by a sweep's best model."""
    found = []
    for metrics_file in Path(log_dir).glob("**/metrics.json"):
        try:
            metrics = json.loads(metrics_file.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(metrics, dict) or metrics.get("status") != "ok" or "val/acc_best" not in metrics:
            continue
        tested = metrics.get("tested") or metrics.get("checkpoint") or "last"
        path = metrics_file.parent / "checkpoints" / "last.ckpt" if tested == "last" else Path(tested)
        if path.is_file():
            found.append((float(metrics["val/acc_best"]), metrics_file.stat().st_mtime, path))
    if not found:
        raise CheckpointError(f"ckpt_path=best: no finished run with its tested checkpoint under {log_dir}")
    return max(found)[2].resolve()


def say_which(value: str, path: Path) -> None:
    """A `ckpt_path` given by name (`last`, `best`): say on stderr which file it turned out to be."""
    if value in ("last", "best"):
        print(f"ckpt_path={value}: {path}", file=sys.stderr)


def find_checkpoint(value: str, log_dir: Path, unfinished: bool = False) -> Path:
    """`last`: the newest checkpoints/last.ckpt under log_dir of a run that is not running (runs and
    sweep jobs), with `unfinished` of a run that stopped before its results (what a resume continues);
    `best`: the tested checkpoint of the finished run with the best validation accuracy; else a
    checkpoint file's path. ConfigError when there is none."""
    if value == "best":
        if unfinished:
            raise CheckpointError(
                "ckpt_path=best names a finished run's checkpoint (for evaluate, predict and export); "
                "to resume a stopped run give ckpt_path=last or its last.ckpt"
            )
        return best_checkpoint(Path(log_dir))
    if value == "last":
        candidates = [p for p in Path(log_dir).glob("**/checkpoints/last.ckpt") if p.is_file()]
        idle = [p for p in candidates if not is_running(p.parent.parent)]
        if unfinished:
            stopped = [p for p in idle if not finished(p.parent.parent)]
            if not stopped:
                done = f" (every run there finished: {len(idle)})" if idle else ""
                raise CheckpointError(f"ckpt_path=last: nothing to resume, no stopped run under {log_dir}{done}")
            idle = stopped
        if not idle:
            running = f" ({len(candidates)} belong to runs still running)" if candidates else ""
            raise CheckpointError(f"ckpt_path=last: no checkpoints/last.ckpt under {log_dir}{running}")
        return max(idle, key=lambda p: p.stat().st_mtime).resolve()
    path = Path(value).expanduser()
    if path.is_dir():
        raise CheckpointError(
            f"ckpt_path: {value} is a directory; give a checkpoint file (e.g. {value}/checkpoints/last.ckpt) or last"
        )
    if not path.is_file():
        raise CheckpointError(f"ckpt_path: no such checkpoint file: {value}")
    if is_running(path.resolve().parent.parent):
        raise CheckpointError(f"ckpt_path: {value} belongs to a run that is still running; wait for it to end")
    return path.resolve()


def new_file_mode() -> int:
    """The mode a file created here now gets (0666 less the umask), as every other file of a run dir has."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def write_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """write(a temp file) beside `path`, then rename it into place: readers see the old file or the new one,
    never half of one, two writers never share a temp file, and a failed write leaves nothing behind.
    The file gets the permissions of the files beside it (a temp file's own are private)."""
    path = Path(path)
    descriptor, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(descriptor)
    tmp = Path(name)
    try:
        write(tmp)
        os.chmod(tmp, new_file_mode())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomically(path: Path, text: str) -> None:
    write_atomically(path, lambda tmp: tmp.write_text(text))


def write_json_atomically(path: Path, data: dict) -> None:
    write_text_atomically(path, json.dumps(data, indent=2) + "\n")


def record_failure(run_dir: Path, error: BaseException, wall_seconds: float) -> str:
    """Write failure.json into a sweep job's dir; return the error's first line."""
    message = one_line(error)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomically(
        run_dir / "failure.json",
        {"error": message, "wall_seconds": round(wall_seconds, 2), "traceback": traceback.format_exception(error)},
    )
    return message
