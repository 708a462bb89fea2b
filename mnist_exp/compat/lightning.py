"""Lightning's launcher classes are private: which launcher restarts the command line for its extra
processes (DDP's subprocess launcher) has no public API."""

from __future__ import annotations


def restarts_command_line(trainer) -> bool:
    """Whether the trainer's strategy starts its other processes by running this command line again."""
    from pytorch_lightning.strategies.launchers import _SubprocessScriptLauncher

    return isinstance(trainer.strategy.launcher, _SubprocessScriptLauncher)
