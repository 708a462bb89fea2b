"""OmegaConf keeps a resolver's cached results in a per-config dict keyed by the resolver's name; there is
no public call that forgets one resolver's results (OmegaConf.clear_cache forgets all of them)."""

from __future__ import annotations


def forget(config, resolver: str) -> None:
    """Drop `resolver`'s cached results in `config`, so that its next use resolves again."""
    from omegaconf import OmegaConf

    OmegaConf.get_cache(config).pop(resolver, None)
