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

import io
import math
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch import nn

from mnist_exp.analysis.figures import tensorboard_writers
from mnist_exp.models.modes import evaluating
from mnist_exp.records.rundirs import write_atomically, write_text_atomically


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
                conv.register_forward_hook(lambda m, i, out: maps.append(out.detach().float().cpu().clone()))
                for conv in convs  # (a copy: an in-place ReLU comes next)
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
        metadata = [["true", "predicted"], *([t, p] for t, p in zip(labels, predicted, strict=True))]
        for writer in tensorboard_writers(trainer.loggers):
            add_embedding(
                Path(writer.get_logdir()),
                torch.cat(self.features),
                metadata,
                torch.cat(self.images),
                tag="test_penultimate",
                step=trainer.global_step,
            )
        self.features, self.images = [], []


_last_sprite: tuple[torch.Tensor, bytes] | None = None  # (pixels, PNG): the previous run's in this process


def sprite_png(grid: torch.Tensor) -> bytes:
    """The sprite [H, W, C] uint8 as PNG (zlib at level 1). Speed, work shared across a sweep's jobs: every
    job of a sweep shows the same test digits, so a sprite equal to the previous one in this process reuses
    its PNG: 0.13 s of encoding for the 10,000 test digits, against milliseconds to compare them."""
    global _last_sprite
    from PIL import Image

    if _last_sprite is not None and torch.equal(_last_sprite[0], grid):
        return _last_sprite[1]
    buffer = io.BytesIO()
    Image.fromarray(grid.squeeze(-1).numpy() if grid.shape[-1] == 1 else grid.numpy()).save(
        buffer, format="PNG", compress_level=1
    )
    _last_sprite = (grid.clone(), buffer.getvalue())
    return _last_sprite[1]


def add_embedding(log_dir: Path, features: torch.Tensor, metadata: list, images: torch.Tensor, tag: str, step: int):
    """The projector's files for features [N, D], a metadata table (header row first) and images [N, C, H, W]
    in 0..1, as torch's SummaryWriter.add_embedding lays them out (STEP/TAG/, projector_config.pbtxt).

    Speed: add_embedding writes the features as text, one Python str() per number, and the sprite from
    float64 RGB: 3.1 s for the 10,000 test digits. Here the features are float32 bytes with their shape in
    the config (the projector reads a tensor file that is not UTF-8 text as such bytes), and the sprite is
    uint8 with zlib at level 1: a few milliseconds for the one, a tenth of a second for the other."""
    from google.protobuf import text_format
    from tensorboard.plugins.projector.projector_config_pb2 import EmbeddingInfo, ProjectorConfig

    subdir = f"{step:05d}/{tag}"
    out_dir = log_dir / subdir
    out_dir.mkdir(parents=True, exist_ok=True)
    info = EmbeddingInfo(tensor_name=f"{tag}:{step:05d}", metadata_path=f"{subdir}/metadata.tsv")
    values = features.float().contiguous().numpy().tobytes()
    try:
        values.decode("utf-8")  # would read as text (all zeros, say): write text, which it then is
    except UnicodeDecodeError:
        info.tensor_path = f"{subdir}/tensors.bytes"
        info.tensor_shape.extend(features.shape)
        write_atomically(log_dir / info.tensor_path, lambda tmp: tmp.write_bytes(values))
    else:
        info.tensor_path = f"{subdir}/tensors.tsv"
        rows = "\n".join("\t".join(f"{v:.6g}" for v in row) for row in features.float().tolist())
        write_text_atomically(log_dir / info.tensor_path, rows + "\n")
    write_text_atomically(log_dir / info.metadata_path, "".join("\t".join(map(str, r)) + "\n" for r in metadata))
    side = math.ceil(len(images) ** 0.5)  # a square grid of digits, row by row, as the projector expects
    count, channels, height, width = images.shape
    pixels = torch.zeros(side * side, height, width, channels, dtype=torch.uint8)
    pixels[:count] = (images.permute(0, 2, 3, 1) * 255).round().clamp(0, 255).to(torch.uint8)
    grid = pixels.view(side, side, height, width, channels).permute(0, 2, 1, 3, 4).reshape(side * height, -1, channels)
    png = sprite_png(grid)
    info.sprite.image_path = f"{subdir}/sprite.png"
    info.sprite.single_image_dim.extend([width, height])
    write_atomically(log_dir / info.sprite.image_path, lambda tmp: tmp.write_bytes(png))
    config_path = log_dir / "projector_config.pbtxt"
    config = ProjectorConfig()
    if config_path.is_file():  # the run's earlier embeddings (a resumed run tests again) stay listed
        text_format.Parse(config_path.read_text(), config)
    kept = [e for e in config.embeddings if e.tensor_name != info.tensor_name]
    del config.embeddings[:]
    config.embeddings.extend([*kept, info])
    write_text_atomically(config_path, text_format.MessageToString(config))
