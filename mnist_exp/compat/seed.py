"""Lightning's `seed_everything` (lightning_fabric/utilities/seed.py) without importing Lightning: the same
calls in the same order, so the weights and shuffles are those it gives. Speed: the run seeds before the
network draws its weights, and a model value the network refuses is said before Lightning's import (about
4 s on 2 cores) rather than after it. tests/test_compat.py holds it equal to Lightning's own."""

from __future__ import annotations

import os
import random


def seed_everything(seed: int, workers: bool = True) -> int:
    """Seed Python's, NumPy's and torch's generators; PL_GLOBAL_SEED for DDP's processes, PL_SEED_WORKERS for
    Lightning's loader-worker seeding, as Lightning sets them."""
    import numpy  # (here: `--help` and `--cfg` import neither)
    import torch

    os.environ["PL_GLOBAL_SEED"] = str(seed)
    random.seed(seed)
    numpy.random.seed(seed)
    torch.manual_seed(seed)
    os.environ["PL_SEED_WORKERS"] = f"{int(workers)}"
    return seed
