"""The input transform, one object for every use: run per batch on the training device.

`BatchTransform` does for a whole uint8 batch what torchvision's ToTensor + Normalize do
for one PIL image (scale to [0, 1], then (x - mean) / std), with an optional augmentation
module applied to training batches in between. The LightningModule owns it (and saves its
mean/std in the checkpoint): training, the test report, evaluate, predict and export all
use that one object.
"""

from __future__ import annotations

import torch
from omegaconf import ListConfig
from torch import nn

from mnist_exp.errors import is_number, require


class BatchTransform(nn.Module):
    def __init__(self, mean: float | list[float] = 0.5, std: float | list[float] = 0.5, augment: nn.Module | None = None):
        """mean, std: one value for every channel, or a list with one per channel."""
        super().__init__()
        means, stds = (list(v) if isinstance(v, (list, tuple, ListConfig)) else [v] for v in (mean, std))
        require(all(is_number(m) for m in means) and means, "transforms.mean", "a number or a list of numbers", mean)
        require(all(is_number(s) and s > 0 for s in stds) and stds, "transforms.std", "a number > 0 or a list of them", std)
        self.mean, self.std = (float(v) if len(vs) == 1 else [float(x) for x in vs] for v, vs in ((mean, means), (std, stds)))
        # broadcast over [B, C, H, W]; not saved in the state dict: the checkpoint keeps mean/std as hparams
        self.register_buffer("_mean", torch.tensor(means, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("_std", torch.tensor(stds, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.augment = augment

    def forward(self, images: torch.Tensor, augment: bool = False) -> torch.Tensor:
        """Pixel values 0..255 (uint8, or float as exported models take them) [B, H, W] or [B, C, H, W]
        -> normalized float [B, C, H, W]; the input is left as it is."""
        if images.dim() == 3:
            images = images.unsqueeze(1)
        x = images.float() / 255.0
        if augment and self.augment is not None:
            x = self.augment(x)
        return (x - self._mean) / self._std

    def undo(self, x: torch.Tensor) -> torch.Tensor:
        """Normalized images back to 0..1 (for figures)."""
        return (x.float() * self._std + self._mean).clamp(0, 1)

    def extra_repr(self) -> str:
        return f"mean={self.mean}, std={self.std}"
