"""Predict the digits in real image files.

  python -m mnist_exp.predict ckpt_path=PATH inputs=FILE|DIR|GLOB [top_k=3] [output=FILE]
  (--top-k N is accepted for top_k=N)

Each image is made to look like an MNIST digit (mnist_exp/images.py) and normalized as in
training. One JSON line per file goes to stdout (and to `output`): the file, the predicted
digit, its probability, the top-k and all ten probabilities, or the error for a file that is
missing, empty or not an image. A table goes to stderr. Exit code 1 if any file failed.
"""

from __future__ import annotations

import glob
import json
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, ListConfig

import mnist_exp.config  # noqa: F401  (registers the resolvers the configs use)
from mnist_exp import CONFIG_DIR
from mnist_exp.checks import run_hydra_main
from mnist_exp.resume import quote_ckpt_path


def expand_inputs(inputs) -> list[Path]:
    """FILE, DIR (its files, sorted), GLOB, or a list of them; a name that matches nothing is kept
    so that it is reported as missing."""
    items = list(inputs) if isinstance(inputs, (list, tuple, ListConfig)) else [inputs]
    files: list[Path] = []
    for item in map(str, items):
        path = Path(item).expanduser()
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        elif glob.has_magic(item):
            files += sorted(Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file()) or [path]
        else:
            files.append(path)
    return files


def predict_files(module, files: list[Path], top_k: int, batch_size: int) -> list[dict]:
    import numpy as np
    import torch

    from mnist_exp.images import ImageError, load_digit

    rows, digits, where = [], [], []
    for path in files:
        try:
            digits.append(load_digit(path))
            where.append(len(rows))
            rows.append({"file": str(path)})
        except ImageError as error:
            rows.append({"file": str(path), "error": str(error)})
    for start in range(0, len(digits), batch_size):
        batch = torch.from_numpy(np.stack(digits[start : start + batch_size]))
        probabilities = module.predict_proba(batch).cpu()
        for i, p in zip(where[start : start + batch_size], probabilities):
            best = p.topk(min(top_k, len(p)))
            rows[i].update(
                digit=int(best.indices[0]),
                probability=round(float(best.values[0]), 6),
                top_k=[[int(d), round(float(v), 6)] for d, v in zip(best.indices, best.values)],
                probabilities=[round(float(v), 6) for v in p],
            )
    return rows


def print_table(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="predictions", title_justify="left")
    for column in ("file", "digit", "probability", "top-k"):
        table.add_column(column)
    for row in rows:
        if "error" in row:
            table.add_row(row["file"], "[red]error[/red]", "", f"[red]{row['error']}[/red]")
        else:
            top = "  ".join(f"{d}: {p:.3f}" for d, p in row["top_k"])
            table.add_row(row["file"], str(row["digit"]), f"{row['probability']:.3f}", top)
    Console(stderr=True).print(table)


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="predict")
def main(cfg: DictConfig) -> None:
    from mnist_exp.inference import CheckpointError, load_classifier

    if cfg.top_k < 1:
        sys.exit(f"top_k must be >= 1, got {cfg.top_k}")
    try:
        module = load_classifier(cfg.ckpt_path, map_location=cfg.device)
    except CheckpointError as error:
        sys.exit(str(error))
    rows = predict_files(module, expand_inputs(cfg.inputs), cfg.top_k, cfg.batch_size)
    lines = [json.dumps(row) for row in rows]
    print("\n".join(lines), flush=True)
    if cfg.output:
        Path(cfg.output).write_text("\n".join(lines) + "\n")
    print_table(rows)
    failed = sum("error" in row for row in rows)
    if failed:
        sys.exit(f"{failed} of {len(rows)} files could not be predicted")


def translate_flags(argv: list[str]) -> list[str]:
    """Accept --top-k N / --top-k=N as top_k=N (Hydra itself takes only key=value overrides)."""
    out, i = [], 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--top-k" and i + 1 < len(argv):
            out.append(f"top_k={argv[i + 1]}")
            i += 2
            continue
        out.append(f"top_k={arg.split('=', 1)[1]}" if arg.startswith("--top-k=") else arg)
        i += 1
    return out


if __name__ == "__main__":
    sys.argv[1:] = quote_ckpt_path(translate_flags(sys.argv[1:]))
    run_hydra_main(main)
