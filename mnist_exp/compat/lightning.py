"""Lightning's launcher classes are private: which launcher restarts the command line for its extra
processes (DDP's subprocess launcher) has no public API. Nor has the rich progress bar's epoch label,
which counts epochs from 0 ("Epoch 0/4") where every other line of a run counts from 1."""

from __future__ import annotations

import sys

from pytorch_lightning.callbacks import RichProgressBar


def restarts_command_line(trainer) -> bool:
    """Whether the trainer's strategy starts its other processes by running this command line again."""
    from pytorch_lightning.strategies.launchers import _SubprocessScriptLauncher

    return isinstance(trainer.strategy.launcher, _SubprocessScriptLauncher)


class ProgressBar(RichProgressBar):
    """Lightning's rich progress bar, its epochs counted from 1 like the epoch lines ("Epoch 1/5"), and drawn
    only on a terminal: a redirected log gets the epoch lines, not the bar's last frame."""

    def setup(self, trainer, pl_module, stage: str) -> None:
        if not sys.stdout.isatty():
            self.disable()
        super().setup(trainer, pl_module, stage)

    def _get_train_description(self, current_epoch: int) -> str:  # private in Lightning: pinned in test_compat
        description = f"Epoch {current_epoch + 1}"
        if self.trainer.max_epochs is not None:
            description += f"/{self.trainer.max_epochs}"
        return f"{description:{len(self.validation_description)}}"
