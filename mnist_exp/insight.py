"""What the network learned, in TensorBoard: its first layer's filters and every conv layer's feature maps
for a few fixed digits after each epoch, and the test set's penultimate-layer features in the projector.

- Filters and feature maps: the digits are the first of the validation set (held out, and the test set
  stays untouched until the final test), so the same digits are seen at every epoch; IMAGES tab
  (`insight/filters`, `insight/feature_maps/<layer>`), and filters.png and feature_maps.png in the run
  dir at the end of training.
- Embeddings: the input of the last Linear layer (for the tutorial CNN, the 128 hidden units) for the
  test digits, with the digits themselves as the sprite and `true` and `predicted` labels as metadata:
  PROJECTOR tab, where PCA, t-SNE and UMAP run in the browser.

Hooks find the layers by type (nn.Conv2d, the last nn.Linear), so a model of your own works too.
"""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch
from torch import nn

from mnist_exp.figures import tensorboard_writers
from mnist_exp.models.modes import evaluating


def tiles(maps: torch.Tensor, columns: int) -> torch.Tensor:
    """[N, H, W] maps, each scaled to 0..1 on its own, as one grid image [1, H', W']."""
    from torchvision.utils import make_grid

    flat = maps.float().flatten(1)
    low, high = flat.min(dim=1, keepdim=True).values, flat.max(dim=1, keepdim=True).values
    scaled = ((flat - low) / (high - low).clamp_min(1e-8)).view_as(maps).unsqueeze(1)
    return make_grid(scaled, nrow=columns, padding=1, pad_value=1.0)[:1]


class ModelInsight(pl.Callback):
    """`digits`: how many fixed digits show their feature maps (0: none); `embedding`: how many test
    digits go to the projector (0: none; the test set has 10,000)."""

    def __init__(self, digits: int = 4, embedding: int = 10_000):
        self.digits, self.embedding = digits, embedding
        self.grids: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero or not tensorboard_writers(trainer.loggers):
            return
        convs = [m for m in pl_module.net.modules() if isinstance(m, nn.Conv2d)]
        if not convs:
            return
        self.grids = {"filters": tiles(convs[0].weight.detach().cpu().flatten(0, 1), columns=8)}
        images = trainer.datamodule.val_set.images[: self.digits] if self.digits else None
        if images is not None and len(images):
            maps: list[torch.Tensor] = []
            hooks = [
                conv.register_forward_hook(lambda m, i, out: maps.append(out.detach().float().cpu())) for conv in convs
            ]
            try:
                with evaluating(pl_module):
                    pl_module(pl_module.transform(images.to(pl_module.device)))
            finally:
                for hook in hooks:
                    hook.remove()
            for layer, out in enumerate(maps, start=1):  # one row per digit, one column per channel
                self.grids[f"feature_maps/conv{layer}"] = tiles(out.flatten(0, 1), columns=out.shape[1])
        for writer in tensorboard_writers(trainer.loggers):
            for tag, grid in self.grids.items():
                writer.add_image(f"insight/{tag}", grid, global_step=trainer.current_epoch + 1)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero or not self.grids:
            return
        from torchvision.utils import save_image

        def enlarged(grid: torch.Tensor, factor: int) -> torch.Tensor:  # pixels as blocks, for a file viewer
            return nn.functional.interpolate(grid[None], scale_factor=factor, mode="nearest")[0]

        out_dir = Path(trainer.default_root_dir)
        save_image(enlarged(self.grids["filters"], 12), out_dir / "filters.png")
        layers = [grid for tag, grid in self.grids.items() if tag.startswith("feature_maps/")]
        if layers:
            width = max(grid.shape[-1] for grid in layers)
            padded = [nn.functional.pad(grid, (0, width - grid.shape[-1], 0, 4), value=1.0) for grid in layers]
            save_image(enlarged(torch.cat(padded, dim=1), 3), out_dir / "feature_maps.png")

    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.features: list[torch.Tensor] = []
        self.labels: list[torch.Tensor] = []
        self.predicted: list[torch.Tensor] = []
        self.images: list[torch.Tensor] = []
        self.captured: list[torch.Tensor] = []
        linears = [m for m in pl_module.net.modules() if isinstance(m, nn.Linear)]
        wanted = self.embedding and linears and trainer.is_global_zero and tensorboard_writers(trainer.loggers)
        self.hook = (
            linears[-1].register_forward_pre_hook(lambda m, args: self.captured.append(args[0].detach()))
            if wanted
            else None
        )

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        if self.hook is None:
            return
        room = self.embedding - sum(len(f) for f in self.features)
        if room > 0 and self.captured:
            images, labels = batch
            self.features.append(self.captured[0][:room].float().cpu())  # the first forward: the digit itself
            self.labels.append(labels[:room].cpu())
            self.predicted.append(outputs[:room].argmax(dim=1).cpu())
            self.images.append(pl_module.transform.undo(images[:room]).cpu())
        self.captured.clear()

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.hook is None:
            return
        self.hook.remove()
        if not self.features:
            return
        labels, predicted = torch.cat(self.labels).tolist(), torch.cat(self.predicted).tolist()
        metadata = [[str(t), str(p)] for t, p in zip(labels, predicted, strict=True)]
        for writer in tensorboard_writers(trainer.loggers):
            writer.add_embedding(
                torch.cat(self.features),
                metadata=metadata,
                metadata_header=["true", "predicted"],
                label_img=torch.cat(self.images),
                tag="test_penultimate",
                global_step=trainer.global_step,
            )
        self.features, self.images = [], []
