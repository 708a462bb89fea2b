"""The `robust` preset against the default recipe: clean test accuracy, mean accuracy under the 55
corruption x severity settings of `mnist-exp-evaluate robustness=true`, and accuracy on real handwritten
digits from outside MNIST.

  python bench/robustness.py                    # seeds 0 1 2, both recipes, on MNIST
  python bench/robustness.py --seeds 0 --out /tmp/robust

The outside digits are the 1,797 8x8 digits that scikit-learn ships (UCI's "Optical Recognition of
Handwritten Digits", written by 43 people, 1998), scaled up and centred the way MNIST's were
(mnist_exp/data/images.py: a 20x20 box in a 28x28 frame, by centre of mass). Each seed trains both recipes
(`trainer=cpu`, the machine to itself), then tests each checkpoint. Prints mean +- std over seeds and
names the hardware. Both recipes run with calibrate=true, so the table also shows the test ECE before and
after temperature scaling.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# torch and the project are imported where they are used, so that --help answers at once (5 s sooner).

# calibrate=true fits a temperature after training (the weights and accuracy stay as they are), so the
# runs also measure temperature scaling's effect on the test ECE.
RECIPES = {"default": ["calibrate=true"], "robust": ["experiment=robust", "calibrate=true"]}


def outside_digits() -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's 8x8 digits (ink 0..16 on 0) as MNIST-style uint8 28x28 digits, and their labels."""
    import numpy as np
    import torch
    from sklearn.datasets import load_digits

    from mnist_exp.data.images import to_mnist_digit

    digits = load_digits()
    images = [to_mnist_digit((image * (255 / 16)).astype(np.uint8)) for image in digits.images]
    return torch.from_numpy(np.stack(images)), torch.from_numpy(digits.target)


def mnist_test_loader(batch_size: int = 1000):
    import torch

    from mnist_exp.data.idx import read_idx

    images = torch.from_numpy(read_idx(ROOT / "data" / "mnist" / "t10k-images-idx3-ubyte").copy())
    labels = torch.from_numpy(read_idx(ROOT / "data" / "mnist" / "t10k-labels-idx1-ubyte").copy()).long()
    return [(images[i : i + batch_size], labels[i : i + batch_size]) for i in range(0, len(images), batch_size)]


def train(recipe: str, seed: int, out: Path) -> Path:
    run_dir = out / f"{recipe}-seed{seed}"
    if not (run_dir / "metrics.json").is_file():
        command = [sys.executable, "-m", "mnist_exp", *RECIPES[recipe], f"seed={seed}", "trainer=cpu"]
        subprocess.run([*command, f"hydra.run.dir={run_dir}"], cwd=ROOT, check=True, capture_output=True)
    return run_dir


def measure(run_dir: Path, outside: tuple[torch.Tensor, torch.Tensor]) -> dict:
    from mnist_exp.analysis.robustness import robustness
    from mnist_exp.models.inference import load_classifier

    calibration = json.loads((run_dir / "test_report.json").read_text())["calibration"]
    module = load_classifier(Path(json.loads((run_dir / "metrics.json").read_text())["checkpoint"]))
    results = robustness(module, mnist_test_loader())
    images, labels = outside
    predicted = module.predict_proba(images).argmax(dim=1)
    return {
        "clean": results["clean"],
        "mean_corrupted": results["mean_corrupted"],
        "outside": float((predicted == labels).float().mean()),
        "ece": calibration["ece"],
        "ece_scaled": calibration["ece_temperature_scaled"],
        "temperature": calibration["temperature"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("/tmp/mnist-exp-robustness-bench"))
    args = parser.parse_args()
    outside = outside_digits()
    rows = {recipe: [] for recipe in RECIPES}
    for seed in args.seeds:
        for recipe in RECIPES:
            rows[recipe].append(measure(train(recipe, seed, args.out), outside))
            print(f"{recipe} seed {seed}: {rows[recipe][-1]}", flush=True)
    from bench.run import hardware_line

    print(f"\nHardware: {hardware_line()}")
    print(f"{len(args.seeds)} seeds ({' '.join(map(str, args.seeds))}); test accuracy in %, mean +- std")
    columns = {
        "clean": "clean MNIST %",
        "mean_corrupted": "corrupted %",
        "outside": "outside %",
        "ece": "test ECE %",
        "ece_scaled": "ECE, T-scaled %",
        "temperature": "T",
    }
    print(f"{'recipe':8} " + " ".join(f"{title:>16}" for title in columns.values()))
    for recipe, measured in rows.items():
        cells = []
        for key in columns:
            values = [m[key] * (1 if key == "temperature" else 100) for m in measured]
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{statistics.mean(values):.2f} +- {spread:.2f}")
        print(f"{recipe:8} " + " ".join(f"{cell:>16}" for cell in cells))


if __name__ == "__main__":
    main()
