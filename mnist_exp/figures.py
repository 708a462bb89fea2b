"""The test report's figures: the confusion matrix with its errors readable, and the mistakes, most
confident first, each named by its test index and shown beside its attribution maps.

Both draw one image (all tiles on one canvas) on one axes: a subplot per tile costs seconds at every
run's end."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from mnist_exp.attributions import as_rgb
from mnist_exp.plots import pyplot


@dataclass
class Mistake:
    image: torch.Tensor  # [H, W], 0..1
    index: int  # in the test set
    truth: int
    predicted: int
    confidence: float
    towards_predicted: torch.Tensor | None = None  # attribution maps [H, W]
    towards_truth: torch.Tensor | None = None


def tensorboard_writers(loggers) -> list:
    """The SummaryWriters of the TensorBoard loggers among `loggers`."""
    from pytorch_lightning.loggers import TensorBoardLogger

    return [logger.experiment for logger in loggers if isinstance(logger, TensorBoardLogger)]


def publish(figures: dict, out_dir: Path, writers: list, step: int | None = None) -> None:
    """Each figure, {file name: (TensorBoard tag, figure)}, as out_dir/NAME.png and under its tag in each
    writer; then closed."""
    plt = pyplot()
    for name, (tag, figure) in figures.items():
        figure.savefig(out_dir / f"{name}.png", dpi=120, bbox_inches="tight")
        for writer in writers:
            writer.add_figure(tag, figure, global_step=step, close=False)
        plt.close(figure)


def confusion_figure(matrix: torch.Tensor, title: str = "confusion matrix (test)"):
    """Counts in every cell. The errors get their own colour scale (log, from 1 to the largest error), so
    that 3 and 30 confusions look different; the diagonal, a hundred times larger, is shown in grey."""
    import matplotlib.colors
    import numpy as np

    plt = pyplot()
    counts = matrix.cpu().numpy()
    classes = len(counts)
    errors = np.ma.masked_where(np.eye(classes, dtype=bool) | (counts == 0), counts)
    figure, ax = plt.subplots(figsize=(0.55 * classes + 1.6, 0.55 * classes + 1))
    ax.imshow(np.where(np.eye(classes, dtype=bool), 0.85, 1.0), cmap="gray", vmin=0, vmax=1)
    largest = max(int(errors.max()) if errors.count() else 1, 2)
    shown = ax.imshow(errors, cmap="Reds", norm=matplotlib.colors.LogNorm(vmin=1, vmax=largest))
    for row in range(classes):
        for column in range(classes):
            count = int(counts[row, column])
            if count or row == column:
                dark = row != column and count > largest ** (2 / 3)
                ax.text(
                    column,
                    row,
                    str(count),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if dark else "black",
                    fontweight="bold" if row == column else "normal",
                )
    ax.set(xticks=range(classes), yticks=range(classes), xlabel="predicted", ylabel="true", title=title)
    figure.colorbar(shown, ax=ax, fraction=0.046, pad=0.04, label="errors (log scale)")
    figure.tight_layout()
    return figure


def mistakes_figure(mistakes: list[Mistake], columns: int = 4):
    """The misclassified images in a grid, each titled "#index: true → predicted (confidence)", with its
    Integrated Gradients maps beside it (for the predicted class, then the true one) when they were made."""
    plt = pyplot()
    if not mistakes:
        figure = plt.figure(figsize=(4, 1))
        figure.text(0.5, 0.5, "no misclassified test images", ha="center", va="center")
        return figure
    height, width = mistakes[0].image.shape[-2:]
    maps = mistakes[0].towards_predicted is not None
    panels = 3 if maps else 1
    columns = columns if maps else 2 * columns
    band, gap = height // 2, 6  # room for the title above each tile, space between tiles
    rows = -(-len(mistakes) // columns)
    cell_h, cell_w = height + band + gap, panels * (width + 1) + gap
    canvas = torch.ones(rows * cell_h, columns * cell_w, 3)
    figure = plt.figure(figsize=(columns * panels * 0.65 + 0.5, rows * 1.05 + 0.6))
    ax = figure.add_axes((0, 0, 1, 1 - 0.5 / (rows * 1.05 + 0.6)))
    ax.axis("off")
    for i, mistake in enumerate(mistakes):
        top, left = (i // columns) * cell_h + band, (i % columns) * cell_w
        tiles = [mistake.image.reshape(height, width).unsqueeze(-1).expand(height, width, 3)]
        if maps:
            tiles += [as_rgb(mistake.towards_predicted), as_rgb(mistake.towards_truth)]
        for p, tile in enumerate(tiles):
            canvas[top : top + height, left + p * (width + 1) : left + p * (width + 1) + width] = tile
        title = f"#{mistake.index}: {mistake.truth} → {mistake.predicted} ({mistake.confidence:.2f})"
        ax.text(left + panels * (width + 1) / 2, top - 2, title, ha="center", va="bottom", fontsize=7)
    ax.imshow(canvas.numpy(), interpolation="nearest")
    what = "; beside each, what spoke for the predicted class, then for the true one (red for, blue against)"
    figure.suptitle("misclassified test digits, most confident first" + (what if maps else ""), fontsize=9)
    return figure
