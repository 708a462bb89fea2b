"""Test a checkpoint: `mnist-exp-evaluate ckpt_path=PATH|last [data=fashion_mnist]`.

Writes evaluation.json (accuracy, loss, per-class precision/recall/F1, confusion matrix, calibration),
confusion_matrix.png, mistakes.png, reliability.png and TensorBoard figures into its run dir, and prints
them. `robustness=true` also tests the test set under generated corruptions (mnist_exp/analysis/robustness.py).
The checkpoint was resolved (and `last` pinned to a file) before the run dir was made
(resume.UseCheckpoint); the model is rebuilt from the checkpoint's own saved hyperparameters.
"""

from __future__ import annotations

from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig

from mnist_exp.analysis.figures import publish, tensorboard_writers
from mnist_exp.analysis.report import TestReport
from mnist_exp.analysis.robustness import CORRUPTIONS, examples_figure, robustness, robustness_figure
from mnist_exp.config import command
from mnist_exp.models import DigitClassifier
from mnist_exp.records.checkpoints import resolve
from mnist_exp.records.rundirs import write_json_atomically
from mnist_exp.training.build import built, trainer_from


def evaluate(cfg: DictConfig) -> dict:
    import pytorch_lightning as pl
    import torch

    pl.seed_everything(cfg.seed)
    if cfg.get("torch_threads"):
        torch.set_num_threads(cfg.torch_threads)
    run_dir = Path(cfg.paths.output_dir)
    datamodule = built("data", cfg, instantiate)  # uint8 batches: the checkpoint's own transform normalizes them
    report = TestReport(mistakes=cfg.mistakes)
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c]
    trainer = built(
        "trainer", cfg, lambda tree: trainer_from({**tree, "enable_checkpointing": False}, [report], loggers)
    )
    checkpoint = resolve(cfg.ckpt_path, cfg.paths.log_dir)  # the model loads once the rest is known to work
    module = DigitClassifier.from_checkpoint(checkpoint)
    tested = trainer.test(module, datamodule=datamodule, verbose=False)[0]
    results = {
        "checkpoint": str(checkpoint.path),
        "dataset": cfg.data.name,
        "test/acc": float(tested["test/acc"]),
        "test/loss": float(tested["test/loss"]),
        **report.report,
    }
    print(f"test accuracy {results['test/acc']:.4f}, test loss {results['test/loss']:.4f} on {cfg.data.name}")
    written = "evaluation.json, confusion_matrix.png, mistakes.png, reliability.png"
    if cfg.get("robustness"):
        results["robustness"] = test_robustness(trainer, module, datamodule, loggers, run_dir, cfg.seed)
        written += ", robustness.json, robustness.png, robustness_examples.png"
    write_json_atomically(run_dir / "evaluation.json", results)
    print(f"Report in {run_dir} ({written}); tensorboard --logdir {run_dir}")
    return results


def test_robustness(trainer, module, datamodule, loggers, run_dir: Path, seed: int) -> dict:
    """The test set under every corruption and severity (mnist_exp/analysis/robustness.py): robustness.json and the
    figures in the run dir, scalars and figures in TensorBoard. In the precision the test ran in (the
    trainer's autocast), so that `clean` is the test accuracy."""
    import logging

    log = logging.getLogger(__name__)
    log.info("Robustness: the test set under %d corruptions x 5 severities", len(CORRUPTIONS))
    results = robustness(
        module, datamodule.test_dataloader(), seed, log.info, precision=trainer.precision_plugin.forward_context
    )
    write_json_atomically(run_dir / "robustness.json", results)
    writers = tensorboard_writers(loggers)
    for writer in writers:
        for name in CORRUPTIONS:
            for severity, accuracy in results[name].items():
                writer.add_scalar(f"robustness/{name}", accuracy, int(severity))
        writer.add_scalar("robustness/mean_corrupted", results["mean_corrupted"], 0)
    figures = {
        "robustness": ("robustness/accuracy", robustness_figure(results)),
        "robustness_examples": ("robustness/examples", examples_figure(datamodule.test_set.images[:3], seed)),
    }
    publish(figures, run_dir, writers)
    for writer in writers:
        writer.flush()
    print(f"robustness: clean {results['clean']:.4f}, mean over corruptions {results['mean_corrupted']:.4f}")
    return results


@command("evaluate")
def main(cfg: DictConfig) -> float:
    return evaluate(cfg)["test/acc"]
