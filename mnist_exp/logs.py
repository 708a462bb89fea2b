"""What goes into a run's console output and train.log, besides what Hydra's logging already does."""

from __future__ import annotations

import logging


class DropLightningTips(logging.Filter):
    """Lightning advertises its cloud services in every run ("💡 Tip: ... litlogger"): not in our logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip:")
