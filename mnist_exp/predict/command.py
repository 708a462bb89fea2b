"""Predict the digits in real image files.

  python -m mnist_exp.predict ckpt_path=PATH inputs=FILE|DIR|GLOB [top_k=3] [output=FILE] [attributions=DIR]
  (--top-k N is accepted for top_k=N)

Each image is made to look like an MNIST digit (mnist_exp/data/images.py) and normalized as in
training. One JSON line per file goes to stdout (and to `output`): the file, the predicted
digit, its probability, the top-k and all ten probabilities, or the error for a file that is
missing, empty or not an image. A table goes to stderr. Exit code 1 if any file failed. With
`attributions=DIR`, each file also gets DIR/NUMBER_NAME.png: the digit as the model saw it and why
(Integrated Gradients towards the predicted digit and the runner-up; mnist_exp/analysis/attributions.py).
"""

from __future__ import annotations

import glob
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from omegaconf import DictConfig, ListConfig
from rich.markup import escape

from mnist_exp.analysis.attributions import as_rgb, integrated_gradients
from mnist_exp.config import command
from mnist_exp.data.images import IMAGE_SUFFIXES, ImageError, load_digit, shown_path
from mnist_exp.errors import ConfigError, FailedItemsError
from mnist_exp.lifecycle.checks import check_required
from mnist_exp.models import DigitClassifier
from mnist_exp.models.shapes import MNIST_INPUT_SHAPE
from mnist_exp.records.checkpoints import resolve
from mnist_exp.records.rundirs import find_checkpoint, say_which


def expand_inputs(inputs) -> list[Path]:
    """FILE, DIR (its entries, sorted), GLOB (`**` recurses, never into symlinked dirs), or a list of
    them; each file once, however many ways it is named. A name that matches nothing is kept so that
    it is reported as missing, and a dir named like an image inside a DIR is reported, not skipped."""
    items = list(inputs) if isinstance(inputs, (list, tuple, ListConfig)) else [inputs]
    files: list[Path] = []
    seen: set[str] = set()

    def add(path: Path) -> None:
        key = os.path.realpath(path)
        if key not in seen:
            seen.add(key)
            files.append(path)

    for item in map(str, items):
        path = Path(item).expanduser()
        if path.is_dir():
            for entry in sorted(path.iterdir()):
                if not entry.name.startswith(".") and (entry.is_file() or entry.suffix.lower() in IMAGE_SUFFIXES):
                    add(entry)
        elif glob.has_magic(item):
            matches = sorted(p for p in glob_files(path))
            for match in matches or [path]:
                add(match)
        else:
            add(path)
    return files


def glob_files(pattern: Path) -> list[Path]:
    """Files matching a glob pattern; pathlib's `**` does not follow symlinked dirs, so loops end."""
    parts = pattern.parts
    first_magic = next(i for i, part in enumerate(parts) if glob.has_magic(part))
    base = Path(*parts[:first_magic]) if first_magic else Path(".")
    rest = str(Path(*parts[first_magic:]))
    return [p for p in base.glob(rest) if p.is_file()]


def write_attributions(module, digits, probabilities, names: list[str], out_dir: Path) -> list[str]:
    """For each digit, one PNG: the digit as the model sees it, then its Integrated Gradients maps for the
    predicted digit and for the runner-up (mnist_exp/analysis/attributions.py: red for, blue against)."""
    import torch
    from torchvision.utils import save_image

    inputs = module.transform(digits.to(module.device))
    first, second = probabilities.topk(2, dim=1).indices.unbind(dim=1)
    towards = integrated_gradients(module, inputs, first, second)
    written = []
    for i, name in enumerate(names):
        digit = (digits[i].float() / 255.0).reshape(*digits.shape[-2:], 1).expand(-1, -1, 3)
        panels = torch.cat(
            [
                digit,
                torch.ones(digit.shape[0], 1, 3),
                as_rgb(towards[0][i]),
                torch.ones(digit.shape[0], 1, 3),
                as_rgb(towards[1][i]),
            ],
            dim=1,
        )
        path = out_dir / name
        big = torch.nn.functional.interpolate(panels.permute(2, 0, 1)[None], scale_factor=8, mode="nearest")[0]
        save_image(big, path)
        written.append(str(path))
    return written


def predict_files(
    module, files: list[Path], top_k: int, batch_size: int, attributions: Path | None = None
) -> Iterator[dict]:
    """One result per file, in order, batch by batch (at most batch_size images in memory); with
    `attributions` a dir, an attribution PNG for each file there (NUMBER_STEM.png, NUMBER its place)."""
    import numpy as np
    import torch

    for start in range(0, len(files), batch_size):
        rows, digits, where = [], [], []
        for path in files[start : start + batch_size]:
            try:
                digits.append(load_digit(path))
                where.append(len(rows))
                rows.append({"file": shown_path(path)})
            except ImageError as error:
                rows.append({"file": shown_path(path), "error": str(error)})
        if digits:
            stacked = torch.from_numpy(np.stack(digits))
            probabilities = module.predict_proba(stacked).cpu()
            if attributions is not None:
                names = [f"{start + i}_{files[start + i].stem}.png" for i in where]
                for i, path in zip(
                    where, write_attributions(module, stacked, probabilities, names, attributions), strict=True
                ):
                    rows[i]["attribution"] = path
            for i, p in zip(where, probabilities, strict=False):
                best = p.topk(min(top_k, len(p)))
                rows[i].update(
                    digit=int(best.indices[0]),
                    probability=round(float(best.values[0]), 6),
                    top_k=[[int(d), round(float(v), 6)] for d, v in zip(best.indices, best.values, strict=False)],
                    probabilities=[round(float(v), 6) for v in p],
                )
        yield from rows


TABLE_ROWS = 50  # the table on stderr; longer lists are in the JSON lines only


def print_table(rows: list[dict], total: int) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=True)
    if total > TABLE_ROWS:
        console.print(
            f"{total} files; the table is left out above {TABLE_ROWS} rows (the JSON lines have every result)"
        )
        return
    # file names below the folder they share, whole (the last column wraps on a narrow terminal)
    folder = os.path.commonpath([os.path.dirname(row["file"]) or "." for row in rows]) if rows else ""
    names = [os.path.relpath(row["file"], folder) if folder else row["file"] for row in rows]
    console.print(f"predictions ({folder or '.'}/)", soft_wrap=True, highlight=False, markup=False)
    table = Table()
    table.add_column("file", no_wrap=True, min_width=max((len(name) for name in names), default=4))
    table.add_column("digit")
    table.add_column("probability")
    table.add_column("top-k")  # wraps (an error's message is here) where the file names take the room
    for row, name in zip(rows, names, strict=True):
        if "error" in row:
            table.add_row(escape(name), "[red]error[/red]", "", f"[red]{escape(row['error'])}[/red]")
        else:
            top = "  ".join(f"{d}: {p:.3f}" for d, p in row["top_k"])
            table.add_row(escape(name), str(row["digit"]), f"{row['probability']:.3f}", top)
    console.print(table)


@contextmanager
def progress_bar(total: int) -> Iterator[Callable[[int], None]]:
    """advance(n): a rich progress bar on a terminal stderr; elsewhere nothing (the JSON lines stream)."""
    from rich.console import Console
    from rich.progress import Progress

    console = Console(stderr=True)
    with Progress(console=console, transient=True, disable=not console.is_terminal or total <= 1) as progress:
        task = progress.add_task("predicting", total=total)
        yield lambda n: progress.advance(task, n)


def predict(cfg: DictConfig) -> int:
    """Stream the results (stdout, and `output`); return how many files failed. Everything that needs
    no model is checked before the model loads."""

    check_required(cfg)
    if not isinstance(cfg.top_k, int) or cfg.top_k < 1:
        raise ConfigError(f"top_k must be an integer >= 1, got {cfg.top_k}")
    if not isinstance(cfg.batch_size, int) or cfg.batch_size < 1:
        raise ConfigError(f"batch_size must be an integer >= 1, got {cfg.batch_size}")
    found = find_checkpoint(str(cfg.ckpt_path), Path(cfg.paths.log_dir))  # that it is there; read below
    files = expand_inputs(cfg.inputs)
    if not files:
        raise ConfigError(f"inputs={cfg.inputs}: no files found")
    if not any(path.exists() for path in files):
        raise ConfigError(f"inputs={cfg.inputs}: no such file or dir")
    if cfg.output and not writable_file(Path(cfg.output)):
        raise ConfigError(f"output={cfg.output}: cannot be written")
    attributions = Path(cfg.attributions) if cfg.get("attributions") else None
    if attributions is not None:
        attributions.mkdir(parents=True, exist_ok=True)
        if not os.access(attributions, os.W_OK | os.X_OK):
            raise ConfigError(f"attributions={cfg.attributions}: cannot be written into")
    checkpoint = resolve(str(found), cfg.paths.log_dir)
    say_which(str(cfg.ckpt_path), checkpoint.path)
    input_shape = checkpoint.hparams.get("input_shape", MNIST_INPUT_SHAPE)
    if input_shape != MNIST_INPUT_SHAPE:
        raise ConfigError(
            f"ckpt_path={checkpoint.path}: its model takes {input_shape} images; predict makes "
            "MNIST-style 1 x 28 x 28 digits from image files (export the model to feed it your own)"
        )

    module = DigitClassifier.from_checkpoint(checkpoint).to(cfg.device)
    shown, failed = [], 0
    with ExitStack() as stack:
        out = stack.enter_context(open(cfg.output, "w")) if cfg.output else None
        advance = stack.enter_context(progress_bar(len(files)))
        for number, row in enumerate(predict_files(module, files, cfg.top_k, cfg.batch_size, attributions), 1):
            line = json.dumps(row)
            print(line, flush=number % cfg.batch_size == 0)
            if out:
                out.write(line + "\n")
                if number % cfg.batch_size == 0:
                    out.flush()  # each finished batch is on disk: a crash loses nothing predicted
            failed += "error" in row
            if len(shown) <= TABLE_ROWS:
                shown.append(row)
            advance(1)
    sys.stdout.flush()
    print_table(shown, len(files))
    if failed:
        raise FailedItemsError(f"{failed} of {len(files)} files could not be predicted")
    return failed


def writable_file(path: Path) -> bool:
    """Whether `path` can be written: an existing writable file, or a new one in a writable dir."""
    if path.exists():
        return path.is_file() and os.access(path, os.W_OK)
    parent = path.parent if str(path.parent) else Path(".")
    return parent.is_dir() and os.access(parent, os.W_OK | os.X_OK)


@command("predict")
def main(cfg: DictConfig) -> None:
    predict(cfg)
