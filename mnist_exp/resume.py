"""Resume a run: `python -m mnist_exp ckpt_path=last` or `ckpt_path=PATH`.

A resumed run carries on in the dir of the run that wrote the checkpoint, with that run's
command-line overrides (from its .hydra/overrides.yaml) applied before the new ones, so it trains
the same model on the same data and appends to the same TensorBoard history. The resumed run's
own Hydra config goes to .hydra/resumed-DATE_TIME/, leaving the original's untouched.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import yaml

from mnist_exp import PROJECT_ROOT
from mnist_exp.errors import ConfigError
from mnist_exp.rundirs import find_checkpoint, run_dir_of


def quoted(value: str) -> str:
    """A Hydra override value in double quotes (run dir names contain '=' and ',')."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_ckpt_path(args: list[str]) -> list[str]:
    """`ckpt_path=PATH` with PATH quoted: paths of run dirs hold '=' and ',' that Hydra would parse."""
    def quote(arg: str) -> str:
        key, _, value = arg.partition("=")
        return f"{key}={quoted(value)}" if key == "ckpt_path" and value and value[0] not in "'\"" else arg

    return [quote(arg) for arg in args]


def log_dir_from(args: list[str]) -> Path:
    values = dict(arg.split("=", 1) for arg in args if "=" in arg and not arg.startswith("-"))
    if "paths.log_dir" in values:
        return Path(values["paths.log_dir"])
    return Path(values.get("paths.root_dir", PROJECT_ROOT)) / "outputs"


# Hydra's command-line flags that take the next argument as their value.
FLAGS_WITH_VALUE = {"--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn",
                    "--config-dir", "-cd", "--experimental-rerun", "--info", "-i"}


def split_flags(args: list[str]) -> tuple[list[str], list[str]]:
    """(flags with their values, overrides): argparse wants the overrides in one run."""
    flags, overrides, expect_value = [], [], False
    for arg in args:
        if expect_value and not arg.startswith("-") and "=" not in arg:
            flags.append(arg)
            expect_value = False
        elif arg.startswith("-"):
            flags.append(arg)
            expect_value = arg in FLAGS_WITH_VALUE
        else:
            overrides.append(arg)
            expect_value = False
    return flags, overrides


def resume_arguments(args: list[str]) -> list[str]:
    """The command-line arguments of a resumed run (unchanged when there is no ckpt_path=...)."""
    flags, overrides = split_flags(args)
    given = [arg for arg in overrides if arg.split("=", 1)[0] == "ckpt_path"]
    if not given or given[-1] in ("ckpt_path=null", "ckpt_path="):
        return args
    if {"-m", "--multirun"} & set(flags):
        raise ConfigError("ckpt_path resumes one run; it cannot be combined with -m/--multirun")
    log_dir = log_dir_from(overrides)
    checkpoint = find_checkpoint(given[-1].split("=", 1)[1], log_dir)
    new = [arg for arg in overrides if arg.split("=", 1)[0] != "ckpt_path"] + [f"ckpt_path={quoted(str(checkpoint))}"]
    run_dir = run_dir_of(checkpoint)
    if run_dir is None or not checkpoint.is_relative_to(log_dir.resolve()):
        # a checkpoint from elsewhere: resume with this command's config in a new run dir; overrides
        # found beside a checkpoint outside paths.log_dir are not replayed (they are not ours)
        return [*flags, *new]
    original = replayed_overrides(run_dir)
    print(f"Resuming {run_dir} with its overrides: {' '.join(original) or '(none)'}", file=sys.stderr)
    if any(arg.startswith("hydra.run.dir=") for arg in overrides):
        return [*flags, *original, *new]
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    return [*flags, *original, *new, f"hydra.run.dir={quoted(str(run_dir))}", f"hydra.output_subdir=.hydra/resumed-{stamp}"]


def replayed_overrides(run_dir: Path) -> list[str]:
    """The run's own command-line overrides, from its .hydra/overrides.yaml (a list of strings)."""
    path = run_dir / ".hydra" / "overrides.yaml"
    try:
        original = yaml.safe_load(path.read_text()) or []
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"{path}: cannot be read ({error.__class__.__name__})") from None
    if not isinstance(original, list) or not all(isinstance(o, str) for o in original):
        raise ConfigError(f"{path}: not a list of overrides")
    return [o for o in original if o.split("=", 1)[0] != "ckpt_path"]
