"""Reference training loops for the benchmark, written without the project's code.

  tutorial  the PyTorch tutorial's loop: torchvision MNIST, ToTensor + Normalize per item,
            a DataLoader (batch 64, shuffled), the tutorial CNN, Adam 1e-3.
  inmemory  the same model and optimizer, but MNIST held as one uint8 tensor and batches
            sliced from a shuffled index, normalized per batch: the fastest plain-PyTorch loop.

python bench/loops.py tutorial --epochs 1 --out result.json [--until 0.99]
Writes train seconds per epoch, images/s and test accuracy after each epoch as JSON.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


class Net(nn.Module):
    """The tutorial CNN."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.fc1 = nn.Linear(32 * 7 * 7, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc2(F.relu(self.fc1(torch.flatten(x, 1))))


def torchvision_mnist(data_dir: Path, workdir: Path):
    """torchvision's MNIST datasets over the project's verified files (linked, not copied)."""
    from torchvision import datasets, transforms

    raw = workdir / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in FILES:
        (raw / name).symlink_to(data_dir / name)
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))])
    return (
        datasets.MNIST(workdir, train=True, transform=transform),
        datasets.MNIST(workdir, train=False, transform=transform),
    )


def tutorial_batches(train_set, batch_size):
    loader = torch.utils.data.DataLoader(train_set, batch_size=batch_size, shuffle=True)

    def epoch():
        yield from loader

    return epoch


def inmemory_batches(train_set, batch_size):
    images = train_set.data  # uint8 [N, 28, 28]
    labels = train_set.targets

    def epoch():
        for index in torch.randperm(len(labels)).split(batch_size):
            x = images[index].unsqueeze(1).float().div_(255).sub_(0.5).div_(0.5)
            yield x, labels[index]

    return epoch


def test_accuracy(model, test_set) -> float:
    model.eval()
    x = test_set.data.unsqueeze(1).float().div(255).sub(0.5).div(0.5)
    with torch.no_grad():
        correct = sum(
            (model(xb).argmax(1) == yb).sum().item()
            for xb, yb in zip(x.split(1000), test_set.targets.split(1000), strict=True)
        )
    model.train()
    return correct / len(test_set)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("loop", choices=["tutorial", "inmemory"])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--until", type=float, default=None, help="stop at the first epoch reaching this test accuracy")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", type=Path, default=ROOT / "data" / "mnist")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    with tempfile.TemporaryDirectory() as workdir:
        train_set, test_set = torchvision_mnist(args.data_dir, Path(workdir))
        batches = (tutorial_batches if args.loop == "tutorial" else inmemory_batches)(train_set, args.batch_size)
        model = Net()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        epochs = []
        for epoch in range(args.epochs):
            started = time.perf_counter()
            for x, y in batches():
                optimizer.zero_grad()
                loss = F.cross_entropy(model(x), y)
                loss.backward()
                optimizer.step()
            seconds = time.perf_counter() - started
            accuracy = test_accuracy(model, test_set)
            epochs.append(
                {
                    "epoch": epoch + 1,
                    "train_seconds": seconds,
                    "images_per_second": len(train_set) / seconds,
                    "test_acc": accuracy,
                }
            )
            print(json.dumps(epochs[-1]), flush=True)
            if args.until is not None and accuracy >= args.until:
                break
    args.out.write_text(json.dumps({"loop": args.loop, "epochs": epochs}, indent=2))


if __name__ == "__main__":
    main()
