"""How the model holds up on digits unlike MNIST's: the test set under generated corruptions, in the
spirit of MNIST-C (Mu & Gilmer 2019), each at 5 severities.

Every corruption is a function of a batch of images (float, 0..1, [N, 1, H, W]), a severity 1..5 and a
seeded generator (the same digits get the same corruption in every run). Geometry, blur and stroke
thickness come from kornia; noise, contrast and inversion are one line each.

  mnist-exp-evaluate ckpt_path=last robustness=true   -> robustness.json, robustness.png, TensorBoard
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable

import torch
from kornia.filters import gaussian_blur2d
from kornia.geometry.transform import elastic_transform2d, rotate, scale, shear, translate
from kornia.morphology import dilation, erosion

from mnist_exp.analysis.plots import pyplot

SEVERITIES = (1, 2, 3, 4, 5)


def signs(n: int, generator: torch.Generator) -> torch.Tensor:
    return torch.randint(0, 2, (n,), generator=generator).float() * 2 - 1


def rotated(x, severity, generator):
    degrees = (10, 20, 30, 40, 50)[severity - 1]
    return rotate(x, degrees * signs(len(x), generator))


def shifted(x, severity, generator):
    pixels = (2, 3, 4, 5, 6)[severity - 1]
    angle = torch.rand(len(x), generator=generator) * 2 * math.pi
    return translate(x, pixels * torch.stack([angle.cos(), angle.sin()], dim=1))


def scaled(x, severity, generator):
    factor = (0.85, 0.75, 0.65, 0.55, 0.45)[severity - 1]  # smaller digits (larger ones are cut off)
    return scale(x, torch.full((len(x), 2), factor))


def sheared(x, severity, generator):
    amount = (0.15, 0.3, 0.45, 0.6, 0.75)[severity - 1]
    return shear(x, torch.stack([amount * signs(len(x), generator), torch.zeros(len(x))], dim=1))


def elastic(x, severity, generator):
    alpha = (0.5, 1.0, 1.5, 2.0, 2.5)[severity - 1]
    noise = torch.rand(len(x), 2, *x.shape[-2:], generator=generator) * 2 - 1
    return elastic_transform2d(x, noise, kernel_size=(15, 15), sigma=(4.0, 4.0), alpha=(alpha, alpha))


def noisy(x, severity, generator):
    sigma = (0.1, 0.2, 0.3, 0.4, 0.5)[severity - 1]
    return x + sigma * torch.randn(x.shape, generator=generator)


def blurred(x, severity, generator):
    sigma = (0.6, 0.9, 1.2, 1.5, 1.8)[severity - 1]
    return gaussian_blur2d(x, (9, 9), (sigma, sigma))


def thinned(x, severity, generator):
    amount = (0.2, 0.4, 0.6, 0.8, 1.0)[severity - 1]  # towards strokes one pixel thinner (a 2x2 erosion)
    return (1 - amount) * x + amount * erosion(x, torch.ones(2, 2))


def thickened(x, severity, generator):
    size = (2, 3, 3, 4, 5)[severity - 1]
    return dilation(x, torch.ones(size, size))


def low_contrast(x, severity, generator):
    keep = (0.6, 0.45, 0.3, 0.2, 0.1)[severity - 1]
    return 0.5 + (x - 0.5) * keep


def inverted(x, severity, generator):
    amount = (0.2, 0.4, 0.6, 0.8, 1.0)[severity - 1]  # 1.0: dark ink on white paper
    return (1 - amount) * x + amount * (1 - x)


CORRUPTIONS: dict[str, Callable] = {
    "rotation": rotated,
    "shift": shifted,
    "scale": scaled,
    "shear": sheared,
    "elastic": elastic,
    "gaussian_noise": noisy,
    "blur": blurred,
    "erosion": thinned,
    "dilation": thickened,
    "contrast": low_contrast,
    "inversion": inverted,
}


def corrupt(images: torch.Tensor, name: str, severity: int, seed: int) -> torch.Tensor:
    """uint8 images [N, H, W] or [N, C, H, W] -> the corrupted images as float pixel values 0..255."""
    x = (images if images.dim() == 4 else images.unsqueeze(1)).float().cpu() / 255.0
    generator = torch.Generator().manual_seed(seed)
    return CORRUPTIONS[name](x, severity, generator).clamp(0, 1) * 255.0


@torch.no_grad()
def robustness(
    module,
    dataloader,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
    precision: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
) -> dict:
    """{"clean": accuracy, corruption: {severity: accuracy}} over the loader's digits (torchmetrics).
    `precision`: the context the model runs in (evaluate passes the trainer's autocast, so that `clean` is
    the test accuracy); the corruptions are computed in fp32 outside it."""
    from torchmetrics.classification import MulticlassAccuracy

    module.eval()
    classes = module.hparams.num_classes
    batches = list(dataloader)
    results: dict = {}
    settings = [("clean", 0)] + [(name, s) for name in CORRUPTIONS for s in SEVERITIES]
    for done, (name, severity) in enumerate(settings):
        accuracy = MulticlassAccuracy(classes, average="micro").to(module.device)
        for number, (images, labels) in enumerate(batches):
            pixels = images.float() if name == "clean" else corrupt(images, name, severity, seed * 100_003 + number)
            with precision():
                logits = module(module.transform(pixels.to(module.device)))
            accuracy.update(logits, labels.to(module.device))
        value = round(float(accuracy.compute()), 5)
        if name == "clean":
            results["clean"] = value
        else:
            results.setdefault(name, {})[str(severity)] = value
        if progress:
            progress(f"[{done + 1}/{len(settings)}] {name}{f' severity {severity}' if severity else ''}: {value:.4f}")
    corrupted = [v for name, by_severity in results.items() if name != "clean" for v in by_severity.values()]
    results["mean_corrupted"] = round(sum(corrupted) / len(corrupted), 5)
    return results


def robustness_figure(results: dict):
    """Accuracy against severity, one line per corruption (severity 0: the clean test set)."""
    plt = pyplot()
    figure, ax = plt.subplots(figsize=(7, 4.5))
    for i, name in enumerate(CORRUPTIONS):
        values = [results["clean"], *(results[name][str(s)] for s in SEVERITIES)]
        ax.plot(range(len(values)), values, marker="o", markersize=3, label=name, linestyle="-" if i < 10 else "--")
    ax.set(xlabel="severity (0: clean)", ylabel="test accuracy", ylim=(0, 1), xticks=range(len(SEVERITIES) + 1))
    ax.set_title(f"robustness: clean {results['clean']:.4f}, mean corrupted {results['mean_corrupted']:.4f}")
    ax.legend(fontsize=7, ncol=2, loc="lower left")
    ax.grid(alpha=0.3)
    figure.tight_layout()
    return figure


def examples_figure(images: torch.Tensor, seed: int = 0):
    """One digit per row under every corruption at severities 1, 3 and 5: what the model is asked to read."""
    from torchvision.utils import make_grid

    digits = images[:3]
    rows = []
    for digit_number in range(len(digits)):
        one = digits[digit_number : digit_number + 1]
        row = [one.float().reshape(1, 1, *one.shape[-2:])]
        for name in CORRUPTIONS:
            row += [corrupt(one, name, s, seed).reshape(1, 1, *one.shape[-2:]) for s in (1, 3, 5)]
        rows.append(torch.cat(row))
    grid = make_grid(torch.cat(rows) / 255.0, nrow=1 + 3 * len(CORRUPTIONS), padding=2, pad_value=0.5)
    plt = pyplot()
    figure = plt.figure(figsize=(14, 2.4))
    ax = figure.add_axes((0, 0, 1, 0.8))
    ax.imshow(grid[0].numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.axis("off")
    cell = grid.shape[-1] / (1 + 3 * len(CORRUPTIONS))
    for i, name in enumerate(["clean", *CORRUPTIONS]):
        x = cell / 2 if i == 0 else cell * (1 + 3 * (i - 1) + 1.5)
        ax.text(x, -4, name, ha="center", va="bottom", fontsize=6)
    figure.suptitle("the corruptions at severities 1, 3 and 5", fontsize=9)
    return figure
