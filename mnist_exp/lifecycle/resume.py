"""Resume a run: `mnist-exp ckpt_path=last` or `ckpt_path=PATH`, wherever the run's dir is; continue a sweep:
the same command again (`ContinueSweep`, `job_as_it_stands` at the end of this module).

`UseCheckpoint`, a Hydra callback (mnist_exp/conf/hydra/default.yaml) that runs before the config check and
before any dir is made, resolves `ckpt_path` once (for evaluate too) and composes a resumed run's
config: the stopped run's own saved config (RUN/.hydra/config.yaml, beside RUN/checkpoints/), so it
trains the same model on the same data with the same schedule whatever today's defaults say. The
command's own overrides (read with Hydra's parser) may set where things go and how they are watched
(`paths`, `logger`, `callbacks`, `torch_threads`, `hydra`); one that changes anything else (epochs,
data, model, ...) is refused in one line naming the keys. The run carries on in its own dir and
appends to its TensorBoard history; its Hydra config goes to .hydra/resumed-DATE_TIME/, leaving the
original's untouched. A checkpoint with no saved config beside it resumes with the command's config
in a new run dir.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict

from mnist_exp.config import parse_overrides
from mnist_exp.errors import CheckpointError, ConfigError, Escalated, escalated
from mnist_exp.records.checkpoints import Checkpoint, resolve
from mnist_exp.records.record import data_files, now, read_record
from mnist_exp.records.rundirs import SWEEP_RECORD, finished, is_running, say_which, sweep_record, write_json_atomically

log = logging.getLogger(__name__)

# Keys a resumed run may set anew: where files go and how the run is watched, not what it computes.
FREE = ("paths", "logger", "callbacks", "torch_threads", "hydra", "ckpt_path")
ABSENT = object()


def shown(value: Any) -> str:
    if value is ABSENT:
        return "absent"
    return repr(OmegaConf.to_container(value) if OmegaConf.is_config(value) else value)


def conflicts(command: DictConfig, saved: DictConfig, saved_choices: dict, overrides: list[Any]) -> list[str]:
    """`KEY is SAVED in the checkpoint's run but NEW here` for each override that changes the run."""
    found = []
    for override in overrides:
        key = override.key_or_group
        if key.split(".", 1)[0] in FREE or override.is_delete():
            continue
        if key in saved_choices:  # a config group: the option chosen
            old, new = saved_choices[key], override.value()
        else:
            old = OmegaConf.select(saved, key, default=ABSENT)
            new = OmegaConf.select(command, key, default=ABSENT)
        if old != new:
            found.append(f"{key} is {shown(old)} in the checkpoint's run but {shown(new)} here")
    return found


def model_differences(checkpoint: Checkpoint, requested: dict) -> None:
    """Refuse a checkpoint whose model differs from the model keys requested here."""
    saved = checkpoint.hparams["net_config"]
    differ = {key: value for key, value in requested.items() if saved.get(key) != value}
    if differ:
        detail = ", ".join(
            f"model.{k}={saved.get(k)!r} in the checkpoint but {v!r} requested" for k, v in differ.items()
        )
        raise ConfigError(f"ckpt_path={checkpoint.path} does not match the requested model: {detail}")


def use_checkpoints_dataset(config: DictConfig, checkpoint: Checkpoint) -> None:
    """evaluate with no data= given tests on the dataset the checkpoint was trained on: its run's saved data
    config; a checkpoint without its run dir must match the files of the config's dataset, else it is refused."""
    saved = checkpoint.saved_config()
    if saved is not None and OmegaConf.select(saved, "data") is not None:
        with open_dict(config):
            config.data = saved.data
        print(f"data={config.data.name}: the dataset the checkpoint was trained on", file=sys.stderr)
        return
    trained_on = (checkpoint.contents.get("provenance") or {}).get("data_sha256") or {}
    if trained_on and trained_on != data_files(config):
        raise ConfigError(
            f"ckpt_path={checkpoint.path} was trained on other data files than data={config.data.name} "
            f"({', '.join(sorted(trained_on))}); name its dataset with data=OPTION (mnist_exp/conf/data/)"
        )


def compose_resumed(config: DictConfig, checkpoint: Checkpoint) -> None:
    """Turn the command's composed config (with Hydra's node) into the resumed run's, in place."""
    saved = checkpoint.saved_config()
    if saved is None:  # a checkpoint from elsewhere: the command's config, in a new run dir, for the same model
        model_differences(checkpoint, OmegaConf.to_container(config.model, resolve=True))
        return
    saved_choices = dict(OmegaConf.select(checkpoint.saved_config("hydra"), "hydra.runtime.choices") or {})
    overrides = parse_overrides(config.hydra.overrides.task)
    refused = conflicts(config, saved, saved_choices, overrides)
    if refused:
        raise ConfigError(
            f"ckpt_path={checkpoint.path} resumes its run as it was configured: {'; '.join(refused)}. "
            "Resume without these overrides, or start a new run"
        )
    command_values = OmegaConf.masked_copy(config, [k for k in config.keys() if k != "hydra"])
    with open_dict(config):
        for key in [k for k in config.keys() if k != "hydra"]:
            del config[key]
        config.merge_with(saved)
        for override in overrides:  # where files go and how the run is watched: as this command says
            key = override.key_or_group
            if key.split(".", 1)[0] in ("hydra", "ckpt_path"):
                continue
            if key in saved_choices and key.split(".", 1)[0] not in FREE:
                continue  # the run's own option named again (conflicts() refused any other): its saved values stay
            if override.is_delete():
                parent, _, leaf = key.rpartition(".")
                node = OmegaConf.select(config, parent) if parent else config
                if node is not None and leaf in node:
                    del node[leaf]
            else:
                OmegaConf.update(config, key, OmegaConf.select(command_values, key), force_add=True)
        config.ckpt_path = str(checkpoint.path)
        config.hydra.run.dir = str(checkpoint.run_dir)
        config.hydra.output_subdir = f".hydra/resumed-{time.strftime('%Y-%m-%d_%H-%M-%S')}"
        config.hydra.runtime.choices = saved_choices
    print(
        f"Resuming {checkpoint.run_dir} from {checkpoint.path.name} (step {checkpoint.step}) with its saved config",
        file=sys.stderr,
    )


class UseCheckpoint(Callback):
    """Hydra callback, before the config check and before any dir is made: resolve `ckpt_path` once (a
    file, or `last`: said which), pin it in the config, and for training compose the resumed run's config."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        with escalated():
            self.use(config)

    @staticmethod
    def use(config: DictConfig) -> None:
        value = OmegaConf.select(config, "ckpt_path")
        if value is None:
            return
        sources = OmegaConf.select(config, "hydra.runtime.config_sources")
        resuming = OmegaConf.select(config, "module") is not None  # a training config: evaluate's is no resume
        checkpoint = resolve(value, config.paths.log_dir, sources, unfinished=resuming)
        if resuming and checkpoint.run_dir is not None and finished(checkpoint.run_dir):
            raise CheckpointError(
                f"ckpt_path={value}: its run {checkpoint.run_dir} finished (metrics.json); a resume would rewrite its "
                "results. Start a new run, or evaluate the checkpoint with mnist-exp-evaluate"
            )
        with open_dict(config):
            config.ckpt_path = str(checkpoint.path)  # the run uses the checkpoint checked here
        say_which(value, checkpoint.path)
        if resuming:
            compose_resumed(config, checkpoint)
        elif OmegaConf.select(config, "model") is not None:  # evaluate: model keys given must match the checkpoint
            given = [o.key_or_group for o in parse_overrides(config.hydra.overrides.task)]
            if not any(key == "data" or key.startswith("data.") for key in given):
                use_checkpoints_dataset(config, checkpoint)
            model = OmegaConf.to_container(config.model, resolve=True)
            model_differences(
                checkpoint, {k[6:]: model[k[6:]] for k in given if k.startswith("model.") and k[6:] in model}
            )

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if OmegaConf.select(config, "ckpt_path") is not None:
            raise Escalated(ConfigError("ckpt_path resumes one run; it cannot be combined with -m/--multirun"))


# A sweep run again into its own dir (the same command) continues it.


def task_part(config: DictConfig) -> dict:
    """What a sweep computes: its config without Hydra's node, as composed (interpolations unresolved)."""
    return {k: v for k, v in OmegaConf.to_container(config, resolve=False).items() if k != "hydra"}


def refuse_another_sweep(before: DictConfig, config: DictConfig, sweep_dir: Path) -> None:
    """A sweep dir that holds a sweep takes only that sweep again (the same overrides and config)."""
    theirs, ours = list(before.hydra.overrides.task), list(config.hydra.overrides.task)
    if theirs == ours and task_part(before) == task_part(config):
        return
    only_theirs = [o for o in theirs if o not in ours]
    only_ours = [o for o in ours if o not in theirs]
    what = f"{' '.join(only_theirs) or 'none of'}, not {' '.join(only_ours) or 'these overrides'}"
    if not only_theirs and not only_ours:
        what = "the same overrides on another config"
    raise ConfigError(
        f"hydra.sweep.dir={sweep_dir} holds another sweep ({what}): give another hydra.sweep.dir, "
        "or run that sweep's own command (its .hydra of any job, or multirun.yaml) to continue it"
    )


class ContinueSweep(Callback):
    """Run again into its own dir, a sweep continues (each job as `job_as_it_stands` finds it); another sweep
    into a dir that holds one is refused. sweep.json in the sweep dir lists each start (and end)."""

    def on_multirun_start(self, config, **kwargs) -> None:
        with escalated():
            sweep_dir = Path(config.hydra.sweep.dir)
            if (sweep_dir / "multirun.yaml").is_file():
                refuse_another_sweep(OmegaConf.load(sweep_dir / "multirun.yaml"), config, sweep_dir)
            record = sweep_record(sweep_dir)
            start = {"at": now(), "command": [Path(sys.argv[0]).name, *sys.argv[1:]], "ended": None}
            record["starts"].append(start)
            write_json_atomically(sweep_dir / SWEEP_RECORD, record)
            if len(record["starts"]) > 1:
                log.info("Continuing the sweep in %s (start %d)", sweep_dir, len(record["starts"]))

    def on_multirun_end(self, config, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        record = sweep_record(sweep_dir)
        if record["starts"]:
            record["starts"][-1]["ended"] = now()
            write_json_atomically(sweep_dir / SWEEP_RECORD, record)


def job_as_it_stands(cfg: DictConfig) -> dict | None:
    """A sweep job whose dir holds an earlier run of it (its sweep is being continued): a job that finished
    (`ok`, `pruned`) is kept as it is, nothing retrained or written, and its metrics returned; a failed one
    stays failed (its failure returned; delete its dir to run it again); one stopped before its end resumes
    from its last.ckpt (cfg.ckpt_path set to it; without one it starts over) and None is returned, as for a
    job never started."""
    job_dir = Path(cfg.paths.output_dir)
    record = read_record(job_dir)
    if record is None:
        return None
    status = record.get("status")
    if status in ("ok", "pruned") and finished(job_dir):
        print(f"{job_dir.name}: finished earlier ({status}), kept as it is")  # not logged: its train.log stays
        return json.loads((job_dir / "metrics.json").read_text())
    if status == "failed":
        print(f"{job_dir.name}: failed earlier, kept as failed (delete its dir to run it again)")
        return {"status": "failed", "error": RuntimeError(record.get("error") or "failed")}
    if is_running(job_dir):
        return {"status": "failed", "error": ConfigError(f"{job_dir} is in use by another running process")}
    last = job_dir / "checkpoints" / "last.ckpt"
    if last.is_file():
        with open_dict(cfg):
            cfg.ckpt_path = str(last)
        log.info("%s: stopped before its end (%s); resuming from %s", job_dir.name, status, last)
    return None
