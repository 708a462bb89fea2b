"""Every command's front door, in one voice.

  mnist-exp [OVERRIDES]            python -m mnist_exp            train (and resume: ckpt_path=...)
  mnist-exp-evaluate ckpt_path=... python -m mnist_exp.evaluate   test a checkpoint
  mnist-exp-predict ckpt_path=...  python -m mnist_exp.predict    predict image files
  mnist-exp-export ckpt_path=...   python -m mnist_exp.export     torch.export (.pt2) / ONNX
  mnist-exp-summarize DIR          python -m mnist_exp.summarize  tables of runs, sweeps, studies

The commands are plain functions that raise; this module alone turns the project's expected errors
(mnist_exp/errors.py, and Hydra's composition errors) into one line, `Error: ...`, that says what to
type instead, and exit status 1: for every command, sweep and pre-run check. Anything else keeps its
traceback: it is a bug. No command imports this module. The console scripts are installed with the
project (pyproject.toml); Hydra's shell completion works for them (`eval "$(mnist-exp -sc
install=bash)"`), not for `python -m`.
"""

from __future__ import annotations

import difflib
import importlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mnist_exp import CONFIG_DIR
from mnist_exp.config import command as config_command
from mnist_exp.config import parse_overrides
from mnist_exp.errors import EXPECTED_ERRORS, ConfigError, Escalated, MissingKeysError
from mnist_exp.records.rundirs import newest_interrupted_sweep, sweep_record


@dataclass(frozen=True)
class Command:
    module: str  # run as python -m MODULE
    script: str  # the console script
    config: str  # its config in mnist_exp/conf/ (its usage is in that config's hydra.help)
    example: str  # what to type after it, in the one-line errors
    main_in: str = ""  # the module whose main() the command runs, when not `module` itself

    def invoked_as(self) -> str:
        """The command as the user typed it: the console script, or python -m."""
        return self.script if Path(sys.argv[0]).name == self.script else f"python -m {self.module}"


COMMANDS = {
    "train": Command("mnist_exp", "mnist-exp", "train", "model.channels=32", main_in="mnist_exp.train"),
    "evaluate": Command(
        "mnist_exp.evaluate", "mnist-exp-evaluate", "evaluate", "ckpt_path=last", main_in="mnist_exp.evaluate.command"
    ),
    "predict": Command(
        "mnist_exp.predict",
        "mnist-exp-predict",
        "predict",
        "ckpt_path=last inputs=my_digits/",
        main_in="mnist_exp.predict.command",
    ),
    "export": Command(
        "mnist_exp.export",
        "mnist-exp-export",
        "export",
        "ckpt_path=last format=onnx",
        main_in="mnist_exp.export.command",
    ),
    "summarize": Command("mnist_exp.summarize", "mnist-exp-summarize", "", "outputs/"),
    "reproduce": Command("mnist_exp.reproduce", "mnist-exp-reproduce", "reproduce", "outputs/2026-11-29/10-31-07"),
}

# A mandatory key's values, said the same way by every command.
REQUIRED = {
    "ckpt_path": "ckpt_path=PATH (a .ckpt file) or ckpt_path=last (the newest run's last.ckpt)",
    "inputs": "inputs=FILE, a DIR, a 'GLOB' or [a.png,b.png]",
    "run_dir": "RUN_DIR, a finished run's dir",
}
OVERRIDE_GRAMMAR = "https://hydra.cc/docs/advanced/override_grammar/basic/"


# Hydra's own command-line flags (its argparse parser); anything else starting with '-' is a mistake.
HYDRA_FLAGS = {
    *("--help", "-h", "--hydra-help", "--version", "--cfg", "-c", "--resolve", "--package", "-p", "--run", "-r"),
    *("--multirun", "-m", "--shell-completion", "-sc", "--config-path", "-cp", "--config-name", "-cn"),
    *("--config-dir", "-cd", "--experimental-rerun", "--info", "-i"),
}
CFG_CHOICES = ("job", "hydra", "all")
MODE_FLAGS = {  # Hydra takes one of these modes at a time
    **dict.fromkeys(("--run", "-r"), "run"),
    **dict.fromkeys(("--multirun", "-m"), "multirun"),
    **dict.fromkeys(("--cfg", "-c"), "cfg"),
    **dict.fromkeys(("--info", "-i"), "info"),
    **dict.fromkeys(("--shell-completion", "-sc"), "shell-completion"),
}


def argument_line(args: list[str]) -> str | None:
    """What Hydra would answer with its whole usage text (a dashed override, a --cfg it does not take), or
    accept as something else (a group option named with its .yaml), as one line; None when all is well."""
    modes = [arg for arg in args if arg.partition("=")[0] in MODE_FLAGS]
    if len({MODE_FLAGS[mode.partition("=")[0]] for mode in modes}) > 1:
        return f"{' and '.join(modes)} cannot be combined: give one of -m (--multirun), --cfg, --info, -sc"
    for i, arg in enumerate(args):
        name, has_value, value = arg.partition("=")
        if arg.startswith("-") and name not in HYDRA_FLAGS:
            if has_value:
                return f"{arg}: an override takes no dashes; write {arg.lstrip('-')}"
            return f"{arg}: no such option; overrides are KEY=VALUE, the options are listed by --help"
        if name in ("--cfg", "-c"):
            choice = value if has_value else (args[i + 1] if i + 1 < len(args) else "")
            if choice not in CFG_CHOICES:
                return f"--cfg takes job, hydra or all (what to print), not {choice!r}"
        group = name.lstrip("+~")
        if has_value and value.endswith(".yaml") and group and (CONFIG_DIR / group).is_dir():
            return f"{arg}: name the option without .yaml: {name}={value[: -len('.yaml')]}"
    return None


def fail(message: str) -> None:
    """End the command with `Error: message` as its one line on stderr, exit status 1."""
    print(f"Error: {message}", file=sys.stderr)
    raise SystemExit(1)


def required_line(missing: list[str], command: Command) -> str:
    order = list(REQUIRED)
    missing = sorted(missing, key=lambda key: (order.index(key) if key in order else len(order), key))
    keys = " and ".join(missing)
    values = "; ".join(REQUIRED.get(key, f"{key}=VALUE") for key in missing)
    verb = "is" if len(missing) == 1 else "are"
    return f"{keys} {verb} required: {values}; e.g. {command.invoked_as()} {command.example}"


def compose(config_name: str, overrides: list[str]):
    """This command's config with these overrides, through Hydra's compose API (for diagnosis only)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            return hydra_compose(config_name, overrides=overrides)
    finally:
        GlobalHydra.instance().clear()


def composition_line(error: Exception, args: list[str], command: Command) -> str:
    """A Hydra composition or override error as one line that says what to type, from the exception's own
    attributes and from composing again with Hydra's API (never from its message text)."""
    from hydra.errors import MissingConfigException, OverrideParseException

    if isinstance(error, OverrideParseException):
        if "=" not in error.override:
            example = command.example.split()[0]
            return f"{error.override}: not an override; write KEY=VALUE (e.g. {example}); see {OVERRIDE_GRAMMAR}"
        return f"{error.override}: cannot be parsed; quote values with spaces or commas, see {OVERRIDE_GRAMMAR}"
    if isinstance(error, MissingConfigException) and error.missing_cfg_file and "/" in error.missing_cfg_file:
        group, _, option = error.missing_cfg_file.rpartition("/")
        if error.options:
            return f"{group}={option}: no such {group} option; available: {', '.join(error.options)}"
        return (
            f"{group}: no such config group in {command.invoked_as()}; its keys are in: {command.invoked_as()} --help"
        )

    overrides = parse_overrides(a for a in args if not a.startswith("-"))
    fine: list[str] = []
    for override in overrides:  # the first override that does not compose is the one to name
        try:
            compose(command.config, [*fine, override.input_line])
        except Exception:  # noqa: BLE001  (this one: say why below)
            return override_line(override, fine, command)
        fine.append(override.input_line)
    return " ".join(line.strip() for line in str(error).splitlines() if line.strip())


def override_line(override, others: list[str], command: Command) -> str:
    """Why one override does not compose: a key that exists already (+), or no such key (with the closest)."""
    from omegaconf import OmegaConf

    key = override.key_or_group
    config = compose(command.config, others)
    parts = key.split(".")
    depth = 0  # the first part of the key that is not in the config
    while depth < len(parts) - 1 and OmegaConf.is_dict(OmegaConf.select(config, ".".join(parts[: depth + 1]))):
        depth += 1
    parent, leaf, rest = ".".join(parts[:depth]), parts[depth], ".".join(parts[depth + 1 :])
    node = OmegaConf.select(config, parent) if parent else config
    siblings = [str(k) for k in node.keys()] if OmegaConf.is_dict(node) else []
    if override.is_add() and leaf in siblings:
        return f"+{key}: {key} exists already; drop the +: {override.input_line[1:]}"
    if override.is_delete():
        return f"~{key}: there is no {key} to delete"
    match = difflib.get_close_matches(leaf, siblings, n=1)
    if match:
        meant = ".".join(part for part in (parent, match[0], rest) if part)
        return f"{key}: no such config key; did you mean {meant}?"
    if parent == "trainer":  # any pytorch_lightning.Trainer argument is welcome, listed or not
        listed_or_not = "a Trainer argument that mnist_exp/conf/trainer does not list takes a leading +"
        return f"{key}: no such config key; {listed_or_not}: +{key}=..."
    siblings = [k for k in siblings if not k.startswith("_")]
    listed = f"; {parent or 'the config'} has: {', '.join(siblings[:15])}" if siblings else ""
    return f"{key}: no such config key{listed}"


def expected_cause(error: BaseException) -> BaseException | None:
    """The project's own error inside `error` (as raised, or wrapped by Hydra's instantiate), else None."""
    from hydra.errors import InstantiationException

    while isinstance(error, InstantiationException) and error.__cause__ is not None:
        error = error.__cause__
    return error if isinstance(error, EXPECTED_ERRORS) else None


def run(name: str, main: Callable[[], object]) -> None:
    """Run a command; its expected errors end in one line and exit status 1.

    Hydra prints its errors over many lines unless HYDRA_FULL_ERROR=1, which makes it raise them
    instead: set here so that they reach this one place (other errors then show their full traceback).
    """
    from hydra.errors import ConfigCompositionException, OverrideParseException
    from omegaconf.errors import MissingMandatoryValue

    command = COMMANDS[name]
    os.environ["HYDRA_FULL_ERROR"] = "1"
    if name == "train":
        try:
            sys.argv[1:] = continue_last_sweep(sys.argv[1:])
        except ConfigError as error:
            fail(str(error))
    if name != "summarize":
        sys.argv[1:] = quote_ckpt_path(sys.argv[1:])
        mistake = argument_line(sys.argv[1:])
        if mistake:
            fail(mistake)
    try:
        main()
    except (ConfigCompositionException, OverrideParseException) as error:
        fail(composition_line(error, sys.argv[1:], command))
    except MissingMandatoryValue as error:
        fail(required_line([str(error.full_key or error.key)], command))
    except Escalated as escalated:  # out of a Hydra callback or job, as it was raised there
        error = escalated.error
        if isinstance(error, (ConfigCompositionException, OverrideParseException)):
            fail(composition_line(error, sys.argv[1:], command))
        if isinstance(error, MissingKeysError):
            fail(required_line(error.keys, command))
        if isinstance(error, MissingMandatoryValue):
            fail(required_line([str(error.full_key or error.key)], command))
        cause = expected_cause(error)
        if cause is None:
            raise error from None  # a bug: its own traceback
        fail(str(cause))
    except MissingKeysError as error:
        fail(required_line(error.keys, command))
    except Exception as error:
        cause = expected_cause(error)
        if cause is None:
            raise
        fail(str(cause))


def quoted(value: str) -> str:
    """A Hydra override value in double quotes: a run dir's path holds '=' and ',' (its name is made of the
    overrides), which Hydra's grammar reads as syntax."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def continue_last_sweep(args: list[str]) -> list[str]:
    """`hydra.sweep.dir=last`: the command of the newest interrupted sweep (under `paths.log_dir`, given or the
    default outputs/), into its own dir, which continues it (mnist_exp/lifecycle/resume.py); other args as they are."""
    if "hydra.sweep.dir=last" not in args:
        return args

    given = [arg.partition("=")[2] for arg in args if arg.startswith("paths.log_dir=")]
    sweep_dir = newest_interrupted_sweep(Path(given[-1] if given else "outputs").resolve())
    command = [
        arg for arg in sweep_record(sweep_dir)["starts"][-1]["command"][1:] if not arg.startswith("hydra.sweep.dir=")
    ]
    print(f"hydra.sweep.dir=last: {sweep_dir} (continuing {' '.join(command)})", file=sys.stderr)
    return [*command, f"hydra.sweep.dir={quoted(str(sweep_dir))}"]


def quote_ckpt_path(args: list[str]) -> list[str]:
    """`ckpt_path=PATH` with PATH in quotes, so that a run dir's path can be pasted as it is."""

    def quote(arg: str) -> str:
        key, _, value = arg.partition("=")
        return arg if key != "ckpt_path" or not value or value[0] in "'\"" else f"{key}={quoted(value)}"

    return [quote(arg) for arg in args]


# The lines Hydra answers itself, composing the config but never running the command's task.
ANSWERED_BY_HYDRA = {"--help", "-h", "--hydra-help", "--version"} | {
    flag for flag, mode in MODE_FLAGS.items() if mode in ("cfg", "info", "shell-completion")
}


def command_main(name: str) -> Callable:
    """The command's `main`, imported only now: every command imports torch and Lightning (about 4 s), which
    `--help`, `--cfg` and a refused argument line never pay (tests/test_hardware.py). Speed: for a line Hydra
    answers itself, the command's Hydra app around a task that never runs: evaluate, predict and export
    import torch and Lightning with their modules (`mnist-exp-evaluate --help` took 5.0 s, train's 0.7 s)."""
    command = COMMANDS[name]
    if command.config and any(arg.partition("=")[0] in ANSWERED_BY_HYDRA for arg in sys.argv[1:]):
        return config_command(command.config)(never_run)
    return importlib.import_module(command.main_in or command.module).main


def never_run(cfg) -> None:
    raise AssertionError("Hydra ran a command's task for a line it answers itself (--help, --cfg, --info, -sc)")


def translate_flags(argv: list[str]) -> list[str]:
    """predict's --top-k N / --top-k=N as top_k=N (Hydra itself takes only key=value overrides)."""
    out, i = [], 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--top-k" and i + 1 < len(argv):
            out.append(f"top_k={argv[i + 1]}")
            i += 2
            continue
        out.append(f"top_k={arg.split('=', 1)[1]}" if arg.startswith("--top-k=") else arg)
        i += 1
    return out


def run_dir_argument(argv: list[str]) -> list[str]:
    """reproduce's RUN_DIR (a dir, or any word that is no KEY=VALUE) as run_dir="RUN_DIR"."""

    def as_override(arg: str) -> str:
        plain_word = "=" not in arg and not arg.startswith("-")
        return f"run_dir={quoted(arg)}" if plain_word or Path(arg).is_dir() else arg

    return [as_override(arg) for arg in argv]


# Console scripts (pyproject.toml [project.scripts]) and python -m (each command's __main__.py).
def train() -> None:
    run("train", command_main("train"))


def evaluate() -> None:
    run("evaluate", command_main("evaluate"))


def predict() -> None:
    sys.argv[1:] = translate_flags(sys.argv[1:])
    run("predict", command_main("predict"))


def export() -> None:
    run("export", command_main("export"))


def reproduce() -> None:
    sys.argv[1:] = run_dir_argument(sys.argv[1:])
    run("reproduce", command_main("reproduce"))


def summarize() -> None:
    main = command_main("summarize")
    run("summarize", lambda: main(sys.argv[1:], prog=COMMANDS["summarize"].invoked_as()))
