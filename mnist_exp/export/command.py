"""Export a checkpoint as a standalone model: `python -m mnist_exp.export ckpt_path=PATH format=pt2|onnx`.

The exported model includes the checkpoint's own input transform: it takes float32 images
[N, C, H, W] (MNIST: [N, 1, 28, 28]) with raw pixel values 0..255 and returns class probabilities
[N, classes] ("images" -> "probabilities"), for any batch size N.

Both formats go through `torch.export`, PyTorch's path for a model without its Python code: `pt2` is
its archive (`torch.export.load(FILE).module()`), `onnx` its graph translated by torch's dynamo-based
ONNX exporter (onnxscript). TorchScript (`torch.jit`), which PyTorch deprecates, is no longer written.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import DictConfig

from mnist_exp.config import command
from mnist_exp.errors import ConfigError
from mnist_exp.lifecycle.checks import check_required
from mnist_exp.models import DigitClassifier
from mnist_exp.models.inference import standalone
from mnist_exp.records.checkpoints import resolve
from mnist_exp.records.rundirs import say_which, write_atomically

if TYPE_CHECKING:
    from torch import nn

FORMATS = {"pt2": ".pt2", "onnx": ".onnx"}
RETIRED = {"torchscript": "TorchScript is deprecated in PyTorch; format=pt2 writes a torch.export archive instead"}


def export(ckpt_path: str, fmt: str, output: str | None = None, opset: int = 18, log_dir: str = "outputs") -> tuple:
    """Write the model; returns (the file, the [C, H, W] it takes, its number of classes)."""
    if fmt in RETIRED:
        raise ConfigError(f"format={fmt}: {RETIRED[fmt]}")
    if fmt not in FORMATS:
        raise ConfigError(f"format={fmt} is not one of {', '.join(FORMATS)}")
    checkpoint = resolve(str(ckpt_path), log_dir)
    say_which(str(ckpt_path), checkpoint.path)
    target = Path(output) if output else checkpoint.path.with_suffix(FORMATS[fmt])
    if not target.parent.is_dir():
        raise ConfigError(f"output={target}: its dir does not exist")
    module = DigitClassifier.from_checkpoint(checkpoint)
    input_shape = tuple(module.hparams.input_shape)
    model = standalone(module)
    write_atomically(target, lambda tmp: write_model(model, fmt, tmp, opset, input_shape))
    return target, input_shape, module.hparams.num_classes


def write_model(model: nn.Module, fmt: str, tmp: Path, opset: int, input_shape: tuple) -> None:
    """The model traced by torch.export with a dynamic batch dimension, saved as `fmt`."""
    import torch

    example = torch.zeros(2, *input_shape)
    batch = {0: torch.export.Dim("batch", min=1)}
    if fmt == "onnx":
        program = torch.onnx.export(
            model,
            (example,),
            dynamo=True,
            opset_version=opset,
            input_names=["images"],
            output_names=["probabilities"],
            dynamic_shapes=(batch,),
            verbose=False,
        )
        program.save(str(tmp))
    else:
        torch.export.save(torch.export.export(model, (example,), dynamic_shapes=(batch,)), str(tmp))


@command("export")
def main(cfg: DictConfig) -> None:
    check_required(cfg)
    target, (channels, height, width), classes = export(
        cfg.ckpt_path, cfg.format, cfg.output, cfg.opset, cfg.paths.log_dir
    )
    print(
        f"Wrote {target} ({cfg.format}): float32 images [N, {channels}, {height}, {width}], pixels 0..255 "
        f"-> probabilities [N, {classes}]"
    )
