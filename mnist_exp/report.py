"""The test report: per-class precision/recall/F1, the confusion matrix and the misclassified images.

`TestReport` is a callback, so training runs (at their final test) and `mnist_exp.evaluate` make
the same report: printed as tables, written into the run dir (test_report.json,
confusion_matrix.png, mistakes.png) and logged to TensorBoard as figures.
"""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import TensorBoardLogger
from rich.console import Console
from rich.table import Table
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
)

from mnist_exp.plots import pyplot
from mnist_exp.rundirs import write_json_atomically


def mistakes_figure(mistakes: list[tuple[torch.Tensor, int, int, float]], columns: int = 8):
    """The misclassified images in one grid, each titled "true → predicted (confidence)".

    One axes holding one image of all tiles (with a band above each for its title) draws and saves
    several times faster than a subplot per image, a second or two of every run's end."""
    plt = pyplot()
    if not mistakes:
        figure = plt.figure(figsize=(4, 1))
        figure.text(0.5, 0.5, "no misclassified test images", ha="center", va="center")
        return figure
    images, truths, predictions, confidences = zip(*mistakes, strict=False)
    height, width = images[0].shape[-2:]
    band, gap = height // 2, 4  # room for the title above each tile, space between tiles
    rows = -(-len(images) // columns)
    cell_h, cell_w = height + band + gap, width + gap
    canvas = torch.ones(rows * cell_h, columns * cell_w)
    figure = plt.figure(figsize=(columns * 1.3, rows * 1.5))
    ax = figure.add_axes((0, 0, 1, 0.94))
    ax.axis("off")
    tiles = zip(images, truths, predictions, confidences, strict=True)
    for i, (image, truth, prediction, confidence) in enumerate(tiles):
        top, left = (i // columns) * cell_h + band, (i % columns) * cell_w
        canvas[top : top + height, left : left + width] = image.reshape(-1, height, width)[0]
        ax.text(
            left + width / 2,
            top - 2,
            f"{truth} → {prediction} ({confidence:.2f})",
            ha="center",
            va="bottom",
            fontsize=8,
        )
    ax.imshow(canvas.numpy(), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    figure.suptitle("misclassified test images: true → predicted (confidence)", fontsize=10)
    return figure


class TestReport(pl.Callback):
    def __init__(self, mistakes: int = 64):
        self.max_mistakes = mistakes
        self.report: dict = {}

    def on_test_epoch_start(self, trainer, pl_module) -> None:
        classes = pl_module.hparams.num_classes
        self.per_class = MetricCollection(
            {
                "precision": MulticlassPrecision(classes, average=None),
                "recall": MulticlassRecall(classes, average=None),
                "f1": MulticlassF1Score(classes, average=None),
            }
        ).to(pl_module.device)
        self.confusion = MulticlassConfusionMatrix(classes).to(pl_module.device)
        self.mistakes: list[tuple[torch.Tensor, int, int, float]] = []

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        images, labels = batch
        self.per_class.update(outputs, labels)
        self.confusion.update(outputs, labels)
        room = self.max_mistakes - len(self.mistakes)
        if room > 0:
            confidence, predicted = outputs.softmax(dim=1).max(dim=1)
            wrong = (predicted != labels).nonzero().flatten()[:room]
            shown = pl_module.transform.undo(images[wrong]).cpu()
            for image, i in zip(shown, wrong.tolist(), strict=False):
                self.mistakes.append((image, int(labels[i]), int(predicted[i]), float(confidence[i])))

    def on_test_epoch_end(self, trainer, pl_module) -> None:
        scores = {name: values.tolist() for name, values in self.per_class.compute().items()}
        matrix = self.confusion.compute()
        self.report = {
            "per_class": {
                str(c): {name: scores[name][c] for name in scores} | {"support": int(matrix[c].sum())}
                for c in range(len(matrix))
            },
            "confusion_matrix": matrix.tolist(),
            "mistakes_shown": len(self.mistakes),
        }
        if not trainer.is_global_zero:
            return
        plt = pyplot()
        out_dir = Path(trainer.default_root_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomically(out_dir / "test_report.json", self.report)
        matrix_figure, _ = self.confusion.plot()
        matrix_figure.savefig(out_dir / "confusion_matrix.png", dpi=120, bbox_inches="tight")
        figures = {"test/confusion_matrix": matrix_figure, "test/mistakes": mistakes_figure(self.mistakes)}
        figures["test/mistakes"].savefig(out_dir / "mistakes.png", dpi=120)
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                for tag, figure in figures.items():
                    logger.experiment.add_figure(tag, figure, global_step=trainer.global_step, close=False)
        for figure in figures.values():
            plt.close(figure)
        print_report(self.report)


def print_report(report: dict) -> None:
    console = Console()
    table = Table(title="per class (test)", title_justify="left")
    for column in ("class", "precision", "recall", "F1", "support"):
        table.add_column(column, justify="right")
    for label, row in report["per_class"].items():
        table.add_row(label, f"{row['precision']:.4f}", f"{row['recall']:.4f}", f"{row['f1']:.4f}", str(row["support"]))
    console.print(table)
    matrix = report["confusion_matrix"]
    confusion = Table(title="confusion matrix (rows: true, columns: predicted)", title_justify="left")
    confusion.add_column("", justify="right", style="bold")
    for c in range(len(matrix)):
        confusion.add_column(str(c), justify="right")
    for c, row in enumerate(matrix):
        confusion.add_row(
            str(c), *[f"[bold]{v}[/bold]" if i == c else (str(v) if v else "·") for i, v in enumerate(row)]
        )
    console.print(confusion)
