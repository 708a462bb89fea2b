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
