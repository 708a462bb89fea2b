"""The project's own expected errors. Commands raise them; the front door (mnist_exp/cli.py) ends a
command on one as a single `Error: ...` line and exit status 1. Anything else keeps its traceback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class ConfigError(ValueError):
    """A config value that cannot work; the message is one line naming the key."""


class MissingKeysError(ConfigError):
    """Mandatory keys (`???` in the command's config) that the command line did not give."""

    def __init__(self, keys: list[str]):
        super().__init__(f"{' and '.join(keys)} required")
        self.keys = keys


class StudyError(RuntimeError):
    """An Optuna study's database cannot be used (mnist_exp/study/storage.py); the message is one line."""


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable, unsafe, or not what was asked for; one line."""


class DatasetUnavailableError(RuntimeError):
    """No source could provide verified files."""


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite (callbacks.StopOnNonFiniteLoss); the message says what to try."""


class FailedItemsError(RuntimeError):
    """A command that did its work but some of its items failed (predict: files it could not read);
    each failure was reported where it happened, and this is the summary line."""


# What a command reports as one `Error:` line (mnist_exp/cli.py); anything else keeps its traceback.
EXPECTED_ERRORS = (
    ConfigError,
    StudyError,
    CheckpointError,
    DatasetUnavailableError,
    NonFiniteLossError,
    FailedItemsError,
)


def first_line(error: BaseException) -> str:
    """An error's message, its first line alone; the error's type where it has no message."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def one_line(error: BaseException) -> str:
    """An error as `Type: first line of its message` (the type alone where it has no message): in failure
    records, run records and the sweep's log."""
    message = (str(error).strip().splitlines() or [""])[0]
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


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


class Escalated(BaseException):
    """Carries an error out through Hydra's callbacks (which turn an Exception into a warning) and its job
    runner (which prints "Error executing job with overrides: ..." above it); the front door
    (mnist_exp/cli.py) says an expected one alone, in one line."""

    def __init__(self, error: BaseException):
        super().__init__(str(error))
        self.error = error


@contextmanager
def escalated() -> Iterator[None]:
    """Errors leave the block as Escalated: for Hydra callbacks, whose errors Hydra would otherwise turn
    into a warning and carry on, and for a single run's job (mnist_exp/config.py). The front door says an
    expected one in one line and raises anything else again, with its traceback."""
    try:
        yield
    except Exception as error:
        raise Escalated(error) from error
