"""The test report's figures: the confusion matrix with its errors readable, the reliability diagram,
and the mistakes, most confident first, each named by its test index and shown beside its attribution maps.

All three are pixels drawn with PIL in matplotlib's font and colour map (as matplotlib figures they took
0.4-0.9 s at every run's end); `publish` also takes matplotlib figures (robustness, summaries)."""

from __future__ import annotations

import functools
import io
import struct
from dataclasses import dataclass
from pathlib import Path

import torch

from mnist_exp.analysis.attributions import as_rgb
from mnist_exp.analysis.plots import pyplot
from mnist_exp.compat.tensorboard import file_writer
from mnist_exp.records.rundirs import write_atomically


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
    """Each figure, {file name: (TensorBoard tag, matplotlib figure or PIL image)}, as out_dir/NAME.png
    and under its tag in each writer; then closed.

    Speed: each figure is drawn and PNG-encoded once, and TensorBoard gets the file's own bytes (its
    add_figure draws and encodes again; bbox_inches="tight" would draw twice more), with zlib at level 1
    (the figures are mostly flat colour: a few percent larger, several times faster to encode)."""
    for name, (tag, figure) in figures.items():
        png = png_bytes(figure)
        write_atomically(out_dir / f"{name}.png", lambda tmp, png=png: tmp.write_bytes(png))
        for writer in writers:
            file_writer(writer).add_summary(png_summary(tag, png), step)


def png_bytes(figure) -> bytes:
    """A matplotlib figure (closed here) or a PIL image as PNG."""
    buffer = io.BytesIO()
    if hasattr(figure, "savefig"):
        figure.savefig(buffer, format="png", dpi=120, pil_kwargs={"compress_level": 1})
        pyplot().close(figure)
    else:
        figure.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def png_summary(tag: str, png: bytes):
    """A TensorBoard image summary holding an encoded PNG as it is."""
    from tensorboard.compat.proto.summary_pb2 import Summary

    width, height, _, colour_type = struct.unpack(">IIBB", png[16:26])  # the PNG header's IHDR chunk
    colorspace = {0: 1, 4: 2, 2: 3, 6: 4}[colour_type]  # grey, grey+alpha, RGB, RGBA (PNG -> TensorBoard)
    image = Summary.Image(height=height, width=width, colorspace=colorspace, encoded_image_string=png)
    return Summary(value=[Summary.Value(tag=tag, image=image)])


def confusion_figure(matrix: torch.Tensor, title: str = "confusion matrix (test)", cell: int = 34):
    """Counts in every cell. The errors get their own colour scale (log, from 1 to the largest error), so
    that 3 and 30 confusions look different; the diagonal, a hundred times larger, is shown in grey.

    Speed: drawn as pixels with PIL (matplotlib's colour map and font), not as a matplotlib figure, whose
    100 cell labels took 0.25-0.3 s to lay out and draw; this takes a few hundredths."""
    import numpy as np
    from matplotlib import colormaps
    from matplotlib.colors import LogNorm
    from PIL import Image, ImageDraw

    counts = matrix.cpu().numpy()
    classes = len(counts)
    diagonal = np.eye(classes, dtype=bool)
    errors = np.where(diagonal, 0, counts)
    largest = max(int(errors.max()), 2)
    norm, reds = LogNorm(vmin=1, vmax=largest), colormaps["Reds"]
    colours = (reds(norm(np.maximum(errors, 1)))[..., :3] * 255).round().astype(np.uint8)
    colours[errors == 0] = 255  # no error: white
    colours[diagonal] = round(0.85 * 255)  # the diagonal: grey
    left, top, bar = 52, 34, 16  # room for the "true" label and ticks; the title; the colour bar's width
    grid = classes * cell
    image = Image.new("RGB", (left + grid + 20 + bar + 44, top + grid + 44), "white")
    image.paste(Image.fromarray(colours.repeat(cell, axis=0).repeat(cell, axis=1)), (left, top))
    draw, font, bold = ImageDraw.Draw(image), pil_font(10), pil_font(10, bold=True)
    for row in range(classes):
        for column in range(classes):
            count = int(counts[row, column])
            if count or row == column:
                dark = row != column and count > largest ** (2 / 3)
                centre = (left + column * cell + cell // 2, top + row * cell + cell // 2)
                draw.text(
                    centre,
                    str(count),
                    fill="white" if dark else "black",
                    font=bold if row == column else font,
                    anchor="mm",
                )
        draw.text((left - 6, top + row * cell + cell // 2), str(row), fill="black", font=font, anchor="rm")
        draw.text((left + row * cell + cell // 2, top + grid + 4), str(row), fill="black", font=font, anchor="mt")
    draw.rectangle((left - 1, top - 1, left + grid, top + grid), outline="black")
    draw.text((left + grid // 2, top + grid + 22), "predicted", fill="black", font=pil_font(11), anchor="mt")
    draw.text((left + grid // 2, top // 2), title, fill="black", font=pil_font(12), anchor="mm")
    paste_upright_label(image, "true", grid, (4, top))
    # The colour bar: the error scale from 1 (bottom) to the largest error (top), log-spaced, with its ends.
    levels = np.geomspace(largest, 1, grid)[:, None].repeat(bar, axis=1)
    strip = (reds(norm(levels))[..., :3] * 255).round().astype(np.uint8)
    x = left + grid + 20
    image.paste(Image.fromarray(strip), (x, top))
    draw.rectangle((x - 1, top - 1, x + bar, top + grid), outline="black")
    draw.text((x + bar + 4, top), str(largest), fill="black", font=font, anchor="lt")
    draw.text((x + bar + 4, top + grid), "1", fill="black", font=font, anchor="lb")
    draw.text((x + bar // 2, top + grid + 22), "errors (log)", fill="black", font=font, anchor="mt")
    return image


def reliability_figure(bins: list[dict], calibrated: list[dict] | None, ece: float, ece_calibrated: float | None):
    """Accuracy against confidence per bin (bars), the diagonal a calibrated model would follow.

    Speed: drawn with PIL (0.01 s) where a matplotlib bar chart took 0.1 s at every run's end."""
    from PIL import Image, ImageDraw

    size, left, top, bottom = 300, 48, 30, 44  # the plot's side, margins for ticks, title and labels
    image = Image.new("RGB", (left + size + 16, top + size + bottom), "white")
    draw, font = ImageDraw.Draw(image), pil_font(10)

    def at(x: float, y: float) -> tuple[float, float]:  # data (0..1, 0..1) to pixels
        return left + x * size, top + (1 - y) * size

    for tick in (0, 0.2, 0.4, 0.6, 0.8, 1.0):
        (x, _), (_, y) = at(tick, 0), at(0, tick)
        draw.line((x, top + size, x, top + size + 4), fill="black")
        draw.text((x, top + size + 6), f"{tick:.1f}", fill="black", font=font, anchor="mt")
        draw.line((left - 4, y, left, y), fill="black")
        draw.text((left - 6, y), f"{tick:.1f}", fill="black", font=font, anchor="rm")
    for step in range(0, 41):  # the diagonal, dashed
        if step % 2 == 0:
            draw.line((*at(step / 40, step / 40), *at((step + 1) / 40, (step + 1) / 40)), fill="gray", width=1)
    series = [(bins, (31, 119, 180), f"as trained (ECE {ece:.4f})")]
    if calibrated is not None:
        series.append((calibrated, (255, 127, 14), f"temperature-scaled (ECE {ece_calibrated:.4f})"))
    width = 1 / len(bins)
    for i, (values, colour, label) in enumerate(series):
        offset = (i - (len(series) - 1) / 2) * width / len(series)
        for b in values:
            if b["count"]:
                centre = (b["low"] + b["high"]) / 2 + offset
                x0, y0 = at(centre - width / len(series) / 2, b["accuracy"])
                x1, y1 = at(centre + width / len(series) / 2, 0)
                draw.rectangle((x0, y0, x1 - 1, y1), fill=colour)
        draw.rectangle((left + 8, top + 8 + 16 * i, left + 20, top + 18 + 16 * i), fill=colour)
        draw.text((left + 26, top + 13 + 16 * i), label, fill="black", font=font, anchor="lm")
    draw.text((left + 26, top + 13 + 16 * len(series)), "- - calibrated", fill="gray", font=font, anchor="lm")
    draw.rectangle((left, top, left + size, top + size), outline="black")
    draw.text((left + size // 2, top // 2), "reliability (test)", fill="black", font=pil_font(12), anchor="mm")
    draw.text((left + size // 2, top + size + 24), "confidence", fill="black", font=pil_font(11), anchor="mt")
    paste_upright_label(image, "accuracy", size, (2, top))
    return image


def mistakes_figure(mistakes: list[Mistake], columns: int = 4, scale: int = 3):
    """The misclassified images in a grid, each titled "#index: true → predicted (confidence)", with its
    Integrated Gradients maps beside it (for the predicted class, then the true one) when they were made;
    each pixel drawn as a `scale` x `scale` block.

    Speed: drawn as pixels with PIL (the titles in matplotlib's own font), not as a matplotlib figure,
    whose 64 titles and resampled canvas took 0.25-0.6 s to draw; this takes a few hundredths."""
    from PIL import Image, ImageDraw

    font = pil_font(11)
    if not mistakes:
        image = Image.new("RGB", (320, 60), "white")
        ImageDraw.Draw(image).text((160, 30), "no misclassified test images", fill="black", font=font, anchor="mm")
        return image
    height, width = (scale * size for size in mistakes[0].image.shape[-2:])
    maps = mistakes[0].towards_predicted is not None
    panels = 3 if maps else 1
    columns = columns if maps else 2 * columns
    band, gap, header = 16, 10, 40  # the title above each tile, space between tiles, the heading lines
    rows = -(-len(mistakes) // columns)
    cell_h, cell_w = height + band + gap, max(panels * (width + scale), 108) + gap  # 108: room for a title
    canvas = torch.ones(header + rows * cell_h, gap + columns * cell_w, 3)
    titles = []
    for i, mistake in enumerate(mistakes):
        top, left = header + (i // columns) * cell_h + band, gap + (i % columns) * cell_w
        tiles = [mistake.image.unsqueeze(-1).expand(-1, -1, 3)]
        if maps:
            tiles += [as_rgb(mistake.towards_predicted), as_rgb(mistake.towards_truth)]
        for p, tile in enumerate(tiles):
            blocks = tile.repeat_interleave(scale, dim=0).repeat_interleave(scale, dim=1)
            canvas[top : top + height, left + p * (width + scale) : left + p * (width + scale) + width] = blocks
        title = f"#{mistake.index}: {mistake.truth} → {mistake.predicted} ({mistake.confidence:.2f})"
        titles.append(((left + panels * (width + scale) // 2, top - 3), title))
    image = Image.fromarray((canvas * 255).round().to(torch.uint8).numpy())
    draw = ImageDraw.Draw(image)
    for position, title in titles:
        draw.text(position, title, fill="black", font=font, anchor="md")
    heading = ["misclassified test digits, most confident first"]
    if maps:
        heading.append("beside each, what spoke for the predicted class, then for the true one (red for, blue against)")
    for line, text in enumerate(heading):
        draw.text((image.width // 2, 6 + 15 * line), text, fill="black", font=pil_font(12), anchor="mt")
    return image


def paste_upright_label(image, text: str, length: int, at: tuple[int, int]) -> None:
    """An axis label read bottom to top, centred along `length` pixels from `at` (its top-left corner)."""
    from PIL import Image, ImageDraw

    label = Image.new("RGB", (length, 16), "white")
    ImageDraw.Draw(label).text((length // 2, 8), text, fill="black", font=pil_font(11), anchor="mm")
    image.paste(label.rotate(90, expand=True), at)


@functools.cache
def pil_font(size: int, bold: bool = False):
    """matplotlib's own font (DejaVu Sans), for figures drawn with PIL to read like the rest."""
    from matplotlib import font_manager
    from PIL import ImageFont

    return ImageFont.truetype(
        font_manager.findfont(font_manager.FontProperties(family="DejaVu Sans", weight="bold" if bold else "normal")),
        size,
    )
