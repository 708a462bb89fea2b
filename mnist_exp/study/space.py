"""A search space in Hydra's sweep syntax, as Optuna distributions, and a trial's point as overrides.

  model.channels: choice(8, 16, 32)          -> categorical (also `8,16,32`)
  model.dropout: interval(0.0, 0.5)          -> float, uniform
  optimizer.lr: tag(log, interval(1e-4, 1e-2)) -> float, log-uniform
  trainer.max_epochs: range(2, 8)            -> int (step 1; `range(2, 8, 2)` steps by 2; tag(log, ...) log scale)
  model.kernel_size: int(interval(3, 7))     -> int, uniform

The space is `hydra.sweeper.params` plus the sweeps on the command line; a key the command line gives one
value is held fixed at it and leaves the space. Read with Hydra's own override parser.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from mnist_exp.config import parse_overrides
from mnist_exp.errors import ConfigError, first_line


def distribution(override: Override) -> BaseDistribution:
    """The Optuna distribution of one sweep override (`key=choice(...)`, `interval`, `range`, `a,b,c`)."""
    sweep = override.value()
    log = "log" in sweep.tags
    if isinstance(sweep, ChoiceSweep):
        if any(isinstance(choice, (list, dict)) for choice in sweep.list):
            raise ConfigError(f"{override.input_line}: Optuna chooses among numbers and strings, not lists")
        return CategoricalDistribution(sweep.list)
    if isinstance(sweep, RangeSweep):
        if all(isinstance(v, int) for v in (sweep.start, sweep.stop, sweep.step)):
            # Hydra's range excludes its stop, as Python's does; Optuna's high is included
            return IntDistribution(sweep.start, sweep.stop - sweep.step, log=log, step=1 if log else sweep.step)
        return FloatDistribution(sweep.start, sweep.stop - sweep.step, log=log, step=None if log else sweep.step)
    if isinstance(sweep, IntervalSweep):
        if isinstance(sweep.start, int) and isinstance(sweep.end, int):
            return IntDistribution(sweep.start, sweep.end, log=log)
        return FloatDistribution(sweep.start, sweep.end, log=log)
    raise ConfigError(f"{override.input_line}: not a search space Optuna can sample (choice, interval or range)")


def search_space(params: Mapping[str, str] | None, arguments: Iterable[str]) -> tuple[dict, list[str]]:
    """(distributions by key, fixed overrides): the configured space with the command line's sweeps added,
    less the keys the command line fixes; the fixed overrides as they were written."""
    configured = [f"{key}={value}" for key, value in (params or {}).items()]
    try:
        space = parse_overrides(configured)
        given = parse_overrides(arguments)
    except Exception as error:  # Hydra's OverrideParseException: its message names the override
        raise ConfigError(f"hydra.sweeper.params: {first_line(error)}") from None
    fixed_keys = {o.key_or_group for o in given if not o.is_sweep_override()}
    distributions = {o.key_or_group: distribution(o) for o in space if o.key_or_group not in fixed_keys}
    distributions.update({o.key_or_group: distribution(o) for o in given if o.is_sweep_override()})
    fixed = [o.input_line for o in given if not o.is_sweep_override()]
    return distributions, fixed


def trial_overrides(params: Mapping[str, object], fixed: list[str]) -> list[str]:
    """A trial's command line: its sampled values, then the fixed overrides."""
    return [f"{key}={value}" for key, value in params.items()] + fixed
