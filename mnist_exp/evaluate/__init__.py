"""Test a checkpoint: `mnist-exp-evaluate ckpt_path=PATH|last [data=fashion_mnist]`.

Writes evaluation.json (accuracy, loss, per-class precision/recall/F1, confusion matrix),
confusion_matrix.png, mistakes.png and TensorBoard figures into its run dir, and prints them.
The checkpoint was resolved (and `last` pinned to a file) before the run dir was made
(resume.UseCheckpoint); the model is rebuilt from the checkpoint's own saved hyperparameters.
"""

from __future__ import annotations

from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig

from mnist_exp.checkpoints import resolve
from mnist_exp.config import command
from mnist_exp.rundirs import write_json_atomically


def evaluate(cfg: DictConfig) -> dict:
    import pytorch_lightning as pl

    from mnist_exp.build import built, trainer_from
    from mnist_exp.models import DigitClassifier
    from mnist_exp.report import TestReport

    pl.seed_everything(cfg.seed)
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
    write_json_atomically(run_dir / "evaluation.json", results)
    print(f"test accuracy {results['test/acc']:.4f}, test loss {results['test/loss']:.4f} on {cfg.data.name}")
    print(f"Report in {run_dir} (evaluation.json, confusion_matrix.png, mistakes.png); tensorboard --logdir {run_dir}")
    return results


@command("evaluate")
def main(cfg: DictConfig) -> float:
    return evaluate(cfg)["test/acc"]
