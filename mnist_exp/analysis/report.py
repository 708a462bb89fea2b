"""The test report: per-class precision/recall/F1, the confusion matrix, calibration (ECE, reliability)
and the misclassified digits with why (Integrated Gradients).

`TestReport` is a callback, so training runs (at their final test) and `mnist_exp.evaluate` make
the same report: printed as tables, written into the run dir (test_report.json,
confusion_matrix.png, mistakes.png, reliability.png) and logged to TensorBoard as figures and `test/ece`.
"""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch
from rich.console import Console
from rich.table import Table
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassCalibrationError,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
)

from mnist_exp.analysis.attributions import integrated_gradients
from mnist_exp.analysis.figures import (
    Mistake,
    confusion_figure,
    mistakes_figure,
    publish,
    reliability_figure,
    tensorboard_writers,
)
from mnist_exp.records.rundirs import write_json_atomically
from mnist_exp.training.calibration import BINS, reliability_bins


class TestReport(pl.Callback):
    """`mistakes`: how many misclassified digits the figure shows (the most confident); `attributions`:
    their Integrated Gradients maps beside them (mnist_exp/analysis/attributions.py, about a second for 64)."""

    def __init__(self, mistakes: int = 64, attributions: bool = True):
        self.max_mistakes = mistakes
        self.attributions = attributions
        self.report: dict = {}

    def on_test_epoch_start(self, trainer, pl_module) -> None:
        classes = pl_module.hparams.num_classes
        temperature = getattr(pl_module, "temperature", 1.0)
        self.per_class = MetricCollection(
            {
                "precision": MulticlassPrecision(classes, average=None),
                "recall": MulticlassRecall(classes, average=None),
                "f1": MulticlassF1Score(classes, average=None),
            }
        ).to(pl_module.device)
        self.confusion = MulticlassConfusionMatrix(classes).to(pl_module.device)
        self.calibration = {
            name: MulticlassCalibrationError(classes, n_bins=BINS, norm="l1").to(pl_module.device)
            for name in (["as_trained", "temperature_scaled"] if temperature != 1.0 else ["as_trained"])
        }
        self.temperature = temperature
        self.logits: list[torch.Tensor] = []
        self.labels: list[torch.Tensor] = []
        self.candidates: list[tuple] = []  # (confidence, index, image 0..1, model input, truth, predicted)
        self.seen = 0

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        images, labels = batch
        self.per_class.update(outputs, labels)
        self.confusion.update(outputs, labels)
        for name, metric in self.calibration.items():
            metric.update(
                (outputs.float() / (self.temperature if name == "temperature_scaled" else 1.0)).softmax(1), labels
            )
        self.logits.append(outputs.float().cpu())
        self.labels.append(labels.cpu())
        confidence, predicted = outputs.softmax(dim=1).max(dim=1)
        wrong = (predicted != labels).nonzero().flatten()
        if len(wrong) and self.max_mistakes:
            shown = pl_module.transform.undo(images[wrong]).cpu()
            for j, i in enumerate(wrong.tolist()):
                self.candidates.append(
                    (float(confidence[i]), self.seen + i, shown[j], images[i].cpu(), int(labels[i]), int(predicted[i]))
                )
            if len(self.candidates) > 4 * self.max_mistakes:  # bounded, whatever the model's error rate
                self.candidates = sorted(self.candidates, key=lambda c: -c[0])[: self.max_mistakes]
        self.seen += len(labels)

    def most_confident_mistakes(self, pl_module) -> list[Mistake]:
        chosen = sorted(self.candidates, key=lambda c: -c[0])[: self.max_mistakes]
        mistakes = [
            Mistake(image[0], index, truth, predicted, confidence)
            for confidence, index, image, _, truth, predicted in chosen
        ]
        if self.attributions and chosen:
            inputs = torch.stack([c[3] for c in chosen])
            predicted, truth = integrated_gradients(
                pl_module, inputs, torch.tensor([c[5] for c in chosen]), torch.tensor([c[4] for c in chosen])
            )
            for mistake, towards_predicted, towards_truth in zip(mistakes, predicted, truth, strict=True):
                mistake.towards_predicted, mistake.towards_truth = towards_predicted, towards_truth
        return mistakes

    def calibration_report(self, pl_module) -> dict:
        logits, labels = torch.cat(self.logits), torch.cat(self.labels)
        eces = {name: float(metric.compute()) for name, metric in self.calibration.items()}
        pl_module.log("test/ece", eces["as_trained"])
        report = {"ece": eces["as_trained"], "bins": reliability_bins(logits, labels), "temperature": self.temperature}
        if "temperature_scaled" in eces:
            report["ece_temperature_scaled"] = eces["temperature_scaled"]
            report["bins_temperature_scaled"] = reliability_bins(logits, labels, self.temperature)
        return report

    def on_test_epoch_end(self, trainer, pl_module) -> None:
        scores = {name: values.tolist() for name, values in self.per_class.compute().items()}
        matrix = self.confusion.compute()
        calibration = self.calibration_report(pl_module)
        mistakes = self.most_confident_mistakes(pl_module) if trainer.is_global_zero else []
        self.report = {
            "per_class": {
                str(c): {name: scores[name][c] for name in scores} | {"support": int(matrix[c].sum())}
                for c in range(len(matrix))
            },
            "confusion_matrix": matrix.tolist(),
            "calibration": calibration,
            "mistakes_shown": len(mistakes),
            "mistakes": [
                {"index": m.index, "true": m.truth, "predicted": m.predicted, "confidence": round(m.confidence, 4)}
                for m in mistakes
            ],
        }
        if not trainer.is_global_zero:
            return
        out_dir = Path(trainer.default_root_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomically(out_dir / "test_report.json", self.report)
        reliability = reliability_figure(
            calibration["bins"],
            calibration.get("bins_temperature_scaled"),
            calibration["ece"],
            calibration.get("ece_temperature_scaled"),
        )
        figures = {
            "confusion_matrix": ("test/confusion_matrix", confusion_figure(matrix)),
            "mistakes": ("test/mistakes", mistakes_figure(mistakes)),
            "reliability": ("test/reliability", reliability),
        }
        publish(figures, out_dir, tensorboard_writers(trainer.loggers), trainer.global_step)
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
    calibration = report["calibration"]
    line = f"expected calibration error (test): {calibration['ece']:.4f}"
    if "ece_temperature_scaled" in calibration:
        line += (
            f"; temperature-scaled (T = {calibration['temperature']:.3f}): {calibration['ece_temperature_scaled']:.4f}"
        )
    console.print(line, highlight=False)
