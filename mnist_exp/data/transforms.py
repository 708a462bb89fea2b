"""Per-batch input transforms, run on the training device after the batch is moved there.

`BatchTransform` does for a whole uint8 batch what torchvision's ToTensor + Normalize do
for one PIL image (scale to [0, 1], then (x - mean) / std), with an optional augmentation
module applied to training batches in between.
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
        """uint8 images [B, H, W] or [B, 1, H, W] -> normalized float [B, 1, H, W]."""
        if images.dim() == 3:
            images = images.unsqueeze(1)
        x = images.float().div_(255.0)
        if augment and self.augment is not None:
            x = self.augment(x)
        return x.sub_(self.mean).div_(self.std)

    def extra_repr(self) -> str:
        return f"mean={self.mean}, std={self.std}"
