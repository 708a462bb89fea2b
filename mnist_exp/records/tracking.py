"""What MLflow shows of a run: its provenance as tags and its defining config as params (the metrics
Lightning's MLFlowLogger logs itself), so runs kept in MLflow say which code made them; and, when the
run ends, the model it tested as an MLflow 3 LoggedModel (`models:/<model_id>`) with its test metrics."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig

from mnist_exp.records.hparams import experiment_params, leading_keys


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

    loggers = mlflow_loggers(trainer)
    if not loggers:
        return
    hydra = HydraConfig.get() if HydraConfig.initialized() else None
    choices = dict(hydra.runtime.choices) if hydra else {}
    params = experiment_params(cfg, choices, leading_keys(hydra) if hydra else [], precision)
    tags = provenance_tags(provenance, str(cfg.paths.output_dir), cfg.get("seed"))
    for logger in loggers:
        logger.log_hyperparams(params)
        for key, value in tags.items():
            logger.experiment.set_tag(logger.run_id, key, value)


def mlflow_loggers(trainer) -> list:
    from pytorch_lightning.loggers import MLFlowLogger

    return [logger for logger in trainer.loggers if isinstance(logger, MLFlowLogger)] if trainer.is_global_zero else []


def log_tested_model(trainer, module, metrics: Mapping[str, Any]) -> list[str]:
    """For each MLflow logger: the weights the run tested, as the model export writes (raw pixels in,
    probabilities out), logged as a LoggedModel of the run in torch.export's format (loading it back runs no
    pickled code), with the test metrics linked to it. Returns the model ids."""
    loggers = mlflow_loggers(trainer)
    if not loggers or "test/acc" not in metrics:  # a pruned trial was not tested
        return []
    import mlflow  # 1.5 s to import: only a run that logs to MLflow pays it
    import numpy

    from mnist_exp.models.inference import standalone  # (imports torch: `--help` and refused configs do not)

    model = standalone(module).cpu()
    example = numpy.zeros((2, *module.hparams.input_shape), dtype=numpy.float32)  # traced with a dynamic batch
    linked = {
        key: float(metrics[key]) for key in ("test/acc", "test/loss", "test/ece", "val/acc_best") if key in metrics
    }
    model_ids, before = [], mlflow.get_tracking_uri()
    try:
        for logger in loggers:
            mlflow.set_tracking_uri(logger.experiment.tracking_uri)
            with mlflow.start_run(run_id=logger.run_id):
                info = mlflow.pytorch.log_model(
                    model, name="model", input_example=example, serialization_format="pt2", step=trainer.global_step
                )
                mlflow.log_metrics(linked, step=trainer.global_step, model_id=info.model_id)
            model_ids.append(info.model_id)
    finally:
        mlflow.set_tracking_uri(before)
    return model_ids
