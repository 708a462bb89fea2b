"""Every command's front door, in one voice.

  mnist-exp [OVERRIDES]            python -m mnist_exp            train (and resume: ckpt_path=...)
  mnist-exp-evaluate ckpt_path=... python -m mnist_exp.evaluate   test a checkpoint
  mnist-exp-predict ckpt_path=...  python -m mnist_exp.predict    predict image files
  mnist-exp-export ckpt_path=...   python -m mnist_exp.export     ONNX / TorchScript
  mnist-exp-summarize DIR          python -m mnist_exp.summarize  tables of runs, sweeps, studies

The console scripts are installed with the project (pyproject.toml); Hydra's shell completion works
for them (`eval "$(mnist-exp -sc install=bash)"`), not for `python -m`. The project's own expected
errors end in one line, `Error: ...`, that says what to type instead, and exit status 1: a missing
mandatory key, a misspelled key or group option (suggestions come from that command's own config),
a malformed override, a bad value, an unusable checkpoint, dataset or study database. Anything else
keeps its traceback: it is a bug.
"""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mnist_exp.errors import EXPECTED_ERRORS, exit_with


@dataclass(frozen=True)
class Command:
    module: str  # run as python -m MODULE
    script: str  # the console script
    config: str  # its config in conf/ (its usage is in that config's hydra.help)
    example: str  # what to type after it, in the one-line errors

    def invoked_as(self) -> str:
        """The command as the user typed it: the console script, or python -m."""
        return self.script if Path(sys.argv[0]).name == self.script else f"python -m {self.module}"


COMMANDS = {
    "train": Command("mnist_exp", "mnist-exp", "train", "model.channels=32"),
    "evaluate": Command("mnist_exp.evaluate", "mnist-exp-evaluate", "evaluate", "ckpt_path=last"),
    "predict": Command("mnist_exp.predict", "mnist-exp-predict", "predict", "ckpt_path=last inputs=my_digits/"),
    "export": Command("mnist_exp.export", "mnist-exp-export", "export", "ckpt_path=last format=onnx"),
    "summarize": Command("mnist_exp.summarize", "mnist-exp-summarize", "", "outputs/"),
}
COMMAND_OF_CONFIG = {command.config: command for command in COMMANDS.values()}

# A mandatory key's values, said the same way by every command.
REQUIRED = {
    "ckpt_path": "ckpt_path=PATH (a .ckpt file) or ckpt_path=last (the newest run's last.ckpt)",
    "inputs": "inputs=FILE, a DIR, a 'GLOB' or [a.png,b.png]",
}
OVERRIDE_GRAMMAR = "https://hydra.cc/docs/advanced/override_grammar/basic/"


def required_line(missing: list[str], command: Command) -> str:
    keys = " and ".join(missing)
    values = "; ".join(REQUIRED.get(key, f"{key}=VALUE") for key in missing)
    return f"{keys} {'is' if len(missing) == 1 else 'are'} required: {values}; e.g. {command.invoked_as()} {command.example}"


def close_key(key: str, other_overrides: list[str], config_name: str) -> tuple[str | None, list[str]]:
    """(the key most like `key`, the keys beside it) in this command's config, composed with the other overrides."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    from mnist_exp import CONFIG_DIR

    parent, _, leaf = key.rpartition(".")
    try:
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = compose(config_name, overrides=[o for o in other_overrides if "=" in o and not o.startswith("hydra")])
        node = OmegaConf.select(cfg, parent) if parent else cfg
        siblings = [str(k) for k in node.keys()] if OmegaConf.is_dict(node) else []
    except Exception:  # noqa: BLE001  (a hint is optional: without one the error line still stands)
        return None, []
    match = difflib.get_close_matches(leaf, siblings, n=1)
    return (f"{parent}.{match[0]}" if parent else match[0]) if match else None, siblings


def one_line(error: Exception, overrides: list[str], command: Command) -> str:
    """Hydra's composition and override errors, multi-line, as one line that says what to type."""
    from hydra.errors import MissingConfigException, OverrideParseException

    text = str(error).strip()
    if isinstance(error, MissingConfigException) and "Available options in" in text:
        missing = text.split("Could not find '", 1)[1].split("'", 1)[0]  # e.g. optimizer/adamm
        group, _, option = missing.rpartition("/")
        options_block = text.split("Available options in", 1)[1].split("Config search path", 1)[0]
        options = [line.strip() for line in options_block.splitlines()[1:] if line.strip()]
        return f"{group}={option}: no such {group} option; available: {', '.join(options)}"
    if isinstance(error, MissingConfigException) and "Could not load '" in text:
        group = text.split("Could not load '", 1)[1].split("/", 1)[0]
        return f"{group}: no such config group in {command.invoked_as()}; its keys are in: {command.invoked_as()} --help"
    if isinstance(error, OverrideParseException):
        override = text.split("'", 2)[1] if text.count("'") >= 2 else "?"
        if "=" not in override:
            return f"{override}: not an override; write KEY=VALUE (e.g. {command.example.split()[0]}); see {OVERRIDE_GRAMMAR}"
        reason = text.splitlines()[1].strip() if len(text.splitlines()) > 1 else ""
        return f"{override}: cannot be parsed ({reason}); quote values with spaces or commas, see {OVERRIDE_GRAMMAR}"
    first = text.splitlines()[0] if text else error.__class__.__name__
    if "Could not override '" in first or "Could not append to config" in first:
        key = first.split("'", 2)[1]
        match, siblings = close_key(key, [o for o in overrides if not o.startswith(f"{key}=")], command.config)
        if match:
            return f"{key}: no such config key; did you mean {match}?"
        parent = key.rpartition(".")[0]
        if parent == "trainer":  # any pytorch_lightning.Trainer argument is welcome, listed or not
            return f"{key}: no such config key; a Trainer argument that conf/trainer does not list takes a leading +: +{key}=..."
        siblings = [k for k in siblings if not k.startswith("_")]
        listed = f"; {parent or 'the config'} has: {', '.join(siblings[:15])}" if siblings else ""
        return f"{key}: no such config key{listed}"
    cause = str(error.__cause__).strip().splitlines()[0] if error.__cause__ and str(error.__cause__).strip() else ""
    return " ".join(line.strip() for line in text.splitlines() if line.strip()) + (f": {cause}" if cause else "")


def run(name: str, main: Callable[[], object], rewrite: Callable[[list[str]], list[str]] | None = None) -> None:
    """Run a command's @hydra.main function; its expected errors end in one line and exit status 1.

    Hydra prints composition errors over many lines unless HYDRA_FULL_ERROR=1, which makes it raise
    them instead: set here so they can be caught (other errors then show their full traceback).
    """
    from hydra.errors import (
        ConfigCompositionException,
        MissingConfigException,
        OverrideParseException,
    )
    from omegaconf.errors import MissingMandatoryValue

    command = COMMANDS[name]
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        if rewrite is not None:
            sys.argv[1:] = rewrite(sys.argv[1:])
        main()
    except (ConfigCompositionException, MissingConfigException, OverrideParseException) as error:
        exit_with(one_line(error, [arg for arg in sys.argv[1:] if not arg.startswith("-")], command))
    except (MissingMandatoryValue, *EXPECTED_ERRORS) as error:
        end_with(error, command)


def end_with(error: Exception, command: Command) -> None:
    """An expected error as the command's one line: a missing mandatory key says what to give."""
    from omegaconf.errors import MissingMandatoryValue

    if isinstance(error, MissingMandatoryValue):
        exit_with(required_line([str(error.full_key or error.key)], command))
    exit_with(str(error))


def missing_keys(node, prefix: str = "") -> list[str]:
    """The `???` keys under node, without resolving any interpolation (and without Hydra's own node)."""
    from omegaconf import DictConfig, OmegaConf

    found = []
    for key in node.keys():
        if key == "hydra" and not prefix:
            continue
        child = node._get_node(key)
        if OmegaConf.is_missing(node, key):
            found.append(f"{prefix}{key}")
        elif isinstance(child, DictConfig) and not child._is_interpolation():
            found += missing_keys(child, f"{prefix}{key}.")
    return found


def one_line_errors(task: Callable) -> Callable:
    """Decorate a command's task (under @hydra.main): its expected errors end in one line, before Hydra
    would add its own "Error executing job with overrides" line."""
    import functools

    from hydra.core.hydra_config import HydraConfig
    from omegaconf.errors import MissingMandatoryValue

    @functools.wraps(task)
    def wrapped(cfg):
        try:
            return task(cfg)
        except (MissingMandatoryValue, *EXPECTED_ERRORS) as error:
            end_with(error, COMMAND_OF_CONFIG.get(HydraConfig.get().job.config_name, COMMANDS["train"]))

    return wrapped


def check_required(config, config_name: str) -> None:
    """Before any dir is made: the command's mandatory keys (`???` in its config) are all given."""
    missing = missing_keys(config)
    if missing:
        order = list(REQUIRED)
        missing.sort(key=lambda key: (order.index(key) if key in order else len(order), key))
        exit_with(required_line(missing, COMMAND_OF_CONFIG.get(config_name, COMMANDS["train"])))


# Console scripts (pyproject.toml [project.scripts]).
def train() -> None:
    from mnist_exp.resume import resume_arguments
    from mnist_exp.train import main

    run("train", main, resume_arguments)


def evaluate() -> None:
    from mnist_exp.evaluate import main
    from mnist_exp.resume import quote_ckpt_path

    run("evaluate", main, quote_ckpt_path)


def predict() -> None:
    from mnist_exp.predict import main, translate_flags
    from mnist_exp.resume import quote_ckpt_path

    run("predict", main, lambda args: quote_ckpt_path(translate_flags(args)))


def export() -> None:
    from mnist_exp.export import main
    from mnist_exp.resume import quote_ckpt_path

    run("export", main, quote_ckpt_path)


def summarize() -> None:
    from mnist_exp.summarize import main

    sys.exit(main())
