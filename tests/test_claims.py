"""The accuracies the README and docs state, held on real MNIST. fp32 results differ slightly between CPU
kinds (and `precision: auto` trains in bf16 where the CPU has it natively), so each bound sits below the
stated figure by the margin written beside it."""

from __future__ import annotations

import json
import re

import pytest

from mnist_exp import PROJECT_ROOT
from mnist_exp.data.idx import read_idx
from tests.helpers import run_cli

pytestmark = pytest.mark.slow


def test_the_default_recipe_scores_what_the_readme_says(real_mnist_run):
    metrics = json.loads((real_mnist_run / "metrics.json").read_text())
    # README: 99.19% test, 99.06% best validation (5 epochs; AVX2 fp32 and AMX bf16 alike). Margin 0.3
    # points: a change of CPU kind or precision moves these by a few hundredths; a broken recipe by more.
    assert metrics["epochs"] == 5
    assert metrics["test/acc"] >= 0.9889, metrics
    assert metrics["val/acc_best"] >= 0.9876, metrics


def test_the_fast_preset_reaches_99_percent(tmp_path):
    run_dir = tmp_path / "fast"
    result = run_cli(["experiment=fast", "seed=0", "trainer=cpu", f"hydra.run.dir={run_dir}"])
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    # docs/performance.md: 99.06-99.19% over seeds 0-4 in bf16, 98.84-99.21% capped at AVX2 (fp32); the preset
    # promises 99%. Margin 0.1 point below 99.0% for another CPU kind or precision.
    assert metrics["test/acc"] >= 0.989, metrics
    # its training loss is against label-smoothed targets (above the plain validation loss), and the line says so
    assert re.search(r"epoch 2/2  train loss \(label-smoothed 0\.1\) \d\.\d{4} acc ", result.stdout), result.stdout


def test_predict_on_labelled_image_files_matches_the_labels(real_mnist_run, tmp_path):
    """predict on 500 MNIST test digits written as PNG files: its digits are compared with the labels."""
    from PIL import Image

    images = read_idx(PROJECT_ROOT / "data" / "mnist" / "t10k-images-idx3-ubyte")[:500]
    labels = read_idx(PROJECT_ROOT / "data" / "mnist" / "t10k-labels-idx1-ubyte")[:500]
    for i, image in enumerate(images):
        Image.fromarray(image).save(tmp_path / f"{i:04d}_label{labels[i]}.png")
    result = run_cli(
        [f"ckpt_path={real_mnist_run / 'checkpoints' / 'last.ckpt'}", f"inputs={tmp_path}"], module="mnist_exp.predict"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 500
    right = sum(row["digit"] == int(row["file"].rsplit("_label", 1)[1][0]) for row in rows)
    # The default recipe scores 99.1-99.2% on the whole test set (README; 99.11% measured in bf16 on an
    # AVX-512 AMD EPYC). Margin 1 point for a 500-digit sample (one digit is 0.2 points); predict reads each
    # PNG through its image pipeline, so a regression there shows up here.
    print(f"predict on 500 labelled PNG files: {right / len(rows):.2%} right")
    assert right / len(rows) >= 0.98, right
