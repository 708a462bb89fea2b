"""Can the model's probabilities be believed? Expected calibration error, the reliability diagram's bins,
and temperature scaling (Guo et al. 2017, "On Calibration of Modern Neural Networks").

A model is calibrated when, of the digits it gives 90% confidence, 90% are right. The ECE is the gap
between confidence and accuracy averaged over confidence bins, weighted by how many predictions fall in
each (torchmetrics' MulticlassCalibrationError, 15 bins, L1). Temperature scaling divides the logits by
one number T fitted on the validation set (T > 1 softens over-confident predictions); the predicted
class never changes, so accuracy does not either.
"""

from __future__ import annotations

import torch
from torch.nn import functional

from mnist_exp.models.modes import evaluating
from mnist_exp.records.rundirs import write_atomically

BINS = 15


def expected_calibration_error(logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0) -> float:
    from torchmetrics.functional.classification import multiclass_calibration_error

    probabilities = (logits.float() / temperature).softmax(dim=1)
    return float(multiclass_calibration_error(probabilities, labels, logits.shape[1], n_bins=BINS, norm="l1"))


def reliability_bins(logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0) -> list[dict]:
    """Per confidence bin: its range, how many predictions fall in it, their mean confidence and accuracy."""
    confidence, predicted = (logits.float() / temperature).softmax(dim=1).max(dim=1)
    correct = (predicted == labels).float()
    edges = torch.linspace(0, 1, BINS + 1)
    bins = []
    for low, high in zip(edges[:-1].tolist(), edges[1:].tolist(), strict=True):
        inside = (confidence > low) & (confidence <= high)
        count = int(inside.sum())
        bins.append(
            {
                "low": round(low, 4),
                "high": round(high, 4),
                "count": count,
                "confidence": float(confidence[inside].mean()) if count else None,
                "accuracy": float(correct[inside].mean()) if count else None,
            }
        )
    return bins


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The temperature that minimizes the negative log-likelihood of `labels` (validation set) under
    softmax(logits / T); fitted as log T, so that T stays positive."""
    logits, labels = logits.detach().float(), labels.detach()
    log_t = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = functional.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    return float(log_t.detach().exp())


@torch.no_grad()
def logits_and_labels(module, dataloader) -> tuple[torch.Tensor, torch.Tensor]:
    """The module's logits for every batch of uint8 images of a loader, in eval mode, on the module's device."""
    outputs, targets = [], []
    with evaluating(module):
        for images, labels in dataloader:
            outputs.append(module(module.transform(images.to(module.device))).float().cpu())
            targets.append(labels)
    return torch.cat(outputs), torch.cat(targets)


def calibrate(module, datamodule, checkpoint_path: str | None) -> dict:
    """Fit the temperature on the validation set for the weights that will be tested (the checkpoint's, if
    given, else the module's own) and save it into that checkpoint; set it on the module. Returns the
    temperature and the validation ECE before and after."""
    from pathlib import Path

    contents = None
    if checkpoint_path:
        contents = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
        module.load_state_dict(contents["state_dict"])
    logits, labels = logits_and_labels(module, datamodule.val_dataloader())
    temperature = fit_temperature(logits, labels)
    module.temperature = temperature
    if contents is not None:
        contents["calibration"] = {"temperature": temperature}
        write_atomically(Path(checkpoint_path), lambda tmp: torch.save(contents, tmp))
    return {
        "temperature": round(temperature, 4),
        "val_ece": round(expected_calibration_error(logits, labels), 5),
        "val_ece_temperature_scaled": round(expected_calibration_error(logits, labels, temperature), 5),
    }
