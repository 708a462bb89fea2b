"""The input transform, one object for every use: run per batch on the training device.

`BatchTransform` does for a whole uint8 batch what torchvision's ToTensor + Normalize do
for one PIL image (scale to [0, 1], then (x - mean) / std), with an optional augmentation
module applied to training batches in between. The LightningModule owns it (and saves its
mean/std in the checkpoint): training, the test report, evaluate, predict and export all
use that one object.
"""

from __future__ import annotations

import torch
from torch import nn

from mnist_exp.errors import is_number, require


class BatchTransform(nn.Module):
    def __init__(self, mean: float = 0.5, std: float = 0.5, augment: nn.Module | None = None):
        super().__init__()
        require(is_number(std) and std > 0, "transforms.std", "a number > 0", std)
        require(is_number(mean), "transforms.mean", "a number", mean)
        self.mean, self.std = float(mean), float(std)
        self.augment = augment

    def forward(self, images: torch.Tensor, augment: bool = False) -> torch.Tensor:
        """Pixel values 0..255 (uint8, or float as exported models take them) [B, H, W] or [B, 1, H, W]
        -> normalized float [B, 1, H, W]; the input is left as it is."""
        if images.dim() == 3:
            images = images.unsqueeze(1)
        x = images.float() / 255.0
        if augment and self.augment is not None:
            x = self.augment(x)
        return x.sub_(self.mean).div_(self.std)

    def undo(self, x: torch.Tensor) -> torch.Tensor:
        """Normalized images back to 0..1 (for figures)."""
        return (x.float() * self.std + self.mean).clamp(0, 1)

    def extra_repr(self) -> str:
        return f"mean={self.mean}, std={self.std}"
