"""Resume a run: `mnist-exp ckpt_path=last` or `ckpt_path=PATH`, wherever the run's dir is.

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

import sys
import time
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict

from mnist_exp.checkpoints import Checkpoint, resolve
from mnist_exp.config import parse_overrides
from mnist_exp.errors import CheckpointError, ConfigError, Escalated, escalated
from mnist_exp.record import data_files
from mnist_exp.rundirs import finished, say_which

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
