"""The project's own expected errors, and how a command ends on one: a single line, exit status 1."""

from __future__ import annotations

import sys


class ConfigError(ValueError):
    """A config value that cannot work; the message is one line naming the key."""


def exit_with(message: str) -> None:
    """End the command with `Error: message` as its one line on stderr, exit status 1."""
    print(f"Error: {message}", file=sys.stderr)
    raise SystemExit(1)


class StudyError(RuntimeError):
    """An Optuna study's database cannot be used (mnist_exp/study.py); the message is one line."""


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable, unsafe, or not what was asked for; one line."""


class DatasetUnavailableError(RuntimeError):
    """No source could provide verified files."""


# What a command reports as one `Error:` line (mnist_exp/cli.py); anything else keeps its traceback.
EXPECTED_ERRORS = (ConfigError, StudyError, CheckpointError, DatasetUnavailableError)


def is_int(value) -> bool:
    from numbers import Integral

    return isinstance(value, Integral) and not isinstance(value, bool)


def is_number(value) -> bool:
    """A finite real number (nan and inf make no sense for any configured value)."""
    import math
    from numbers import Real

    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)


def require(ok: bool, key: str, allowed: str, value) -> None:
    """A class's own rule for one of its arguments: `KEY must be ALLOWED, got VALUE` as a ConfigError."""
    if not ok:
        raise ConfigError(f"{key} must be {allowed}, got {value!r}")
