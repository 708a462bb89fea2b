"""What MLflow shows of a run: its provenance as tags and its defining config as params (the metrics
Lightning's MLFlowLogger logs itself), so runs kept in MLflow say which code made them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig


def provenance_tags(provenance: Mapping[str, Any], run_dir: str, seed: Any) -> dict[str, str]:
    """Flat string tags: mnist_exp.git.commit, mnist_exp.versions.torch, mnist_exp.hardware.cpu, ..."""
    tags = {"mnist_exp.run_dir": run_dir, "mnist_exp.seed": str(seed)}

    def flatten(prefix: str, node: Any) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                flatten(f"{prefix}.{key}", value)
        elif prefix.split(".")[1] != "data_sha256":  # the data's digests stay in run.json
            tags[prefix] = str(node)

    flatten("mnist_exp", dict(provenance))
    return tags


def log_to_mlflow(trainer, cfg: DictConfig, provenance: Mapping[str, Any], precision: str) -> None:
    """For each MLflow logger of the run: the provenance tags and the experiment's params."""
    from hydra.core.hydra_config import HydraConfig
    from pytorch_lightning.loggers import MLFlowLogger

    from mnist_exp.hparams import experiment_params, leading_keys

    loggers = [logger for logger in trainer.loggers if isinstance(logger, MLFlowLogger)]
    if not loggers or not trainer.is_global_zero:
        return
    hydra = HydraConfig.get() if HydraConfig.initialized() else None
    choices = dict(hydra.runtime.choices) if hydra else {}
    params = experiment_params(cfg, choices, leading_keys(hydra) if hydra else [], precision)
    tags = provenance_tags(provenance, str(cfg.paths.output_dir), cfg.get("seed"))
    for logger in loggers:
        logger.log_hyperparams(params)
        for key, value in tags.items():
            logger.experiment.set_tag(logger.run_id, key, value)
