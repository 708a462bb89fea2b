"""Test a checkpoint: `python -m mnist_exp.evaluate ckpt_path=PATH|last [data=fashion_mnist]`.

Writes evaluation.json (accuracy, loss, per-class precision/recall/F1, confusion matrix),
confusion_matrix.png, mistakes.png and TensorBoard figures into its run dir, and prints them.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig

import mnist_exp.config  # noqa: F401  (registers the resolvers the configs use)
from mnist_exp import CONFIG_DIR, cli
from mnist_exp.cli import one_line_errors
from mnist_exp.rundirs import find_checkpoint, write_json_atomically


def evaluate(cfg: DictConfig) -> dict:
    import pytorch_lightning as pl

    from mnist_exp.hardware import resolve_precision
    from mnist_exp.inference import load_classifier
    from mnist_exp.report import TestReport

    pl.seed_everything(cfg.seed)
    # The checkpoint and the model keys on the command line were checked (and `last` pinned to a file)
    # before the run dir existed (checks.ConfigCheck); loading checks the file again.
    ckpt_path = find_checkpoint(str(cfg.ckpt_path), Path(cfg.paths.log_dir))
    module = load_classifier(ckpt_path)
    run_dir = Path(cfg.paths.output_dir)
    datamodule = instantiate(cfg.data)  # uint8 batches: the checkpoint's own transform normalizes them
    report = TestReport(mistakes=cfg.mistakes)
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c]
    precision, _ = resolve_precision(cfg.trainer.precision, cfg.trainer.accelerator)
    trainer = instantiate(cfg.trainer, callbacks=[report], logger=loggers or False, enable_checkpointing=False, precision=precision)
    tested = trainer.test(module, datamodule=datamodule, verbose=False)[0]
    results = {
        "checkpoint": str(ckpt_path),
        "dataset": cfg.data.name,
        "test/acc": float(tested["test/acc"]),
        "test/loss": float(tested["test/loss"]),
        **report.report,
    }
    write_json_atomically(run_dir / "evaluation.json", results)
    print(f"test accuracy {results['test/acc']:.4f}, test loss {results['test/loss']:.4f} on {cfg.data.name}")
    print(f"Report in {run_dir} (evaluation.json, confusion_matrix.png, mistakes.png); tensorboard --logdir {run_dir}")
    return results


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="evaluate")
@one_line_errors
def main(cfg: DictConfig) -> float:
    return evaluate(cfg)["test/acc"]


if __name__ == "__main__":
    cli.evaluate()  # the front door of mnist-exp-evaluate, with its argument rewriting
