"""Export a checkpoint as a standalone model: `python -m mnist_exp.export ckpt_path=PATH format=onnx|torchscript`.

The exported model includes the checkpoint's own input transform: it takes float32 images
[N, C, H, W] (MNIST: [N, 1, 28, 28]) with raw pixel values 0..255 and returns class probabilities
[N, classes] ("images" -> "probabilities").
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import hydra
from omegaconf import DictConfig

import mnist_exp.config  # noqa: F401  (registers the resolvers the configs use)
from mnist_exp import CONFIG_DIR, cli
from mnist_exp.cli import check_required, one_line_errors
from mnist_exp.errors import ConfigError

if TYPE_CHECKING:
    from torch import nn

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}


def export(ckpt_path: str, fmt: str, output: str | None = None, opset: int = 17, log_dir: str = "outputs") -> tuple:
    """Write the model; returns (the file, the [C, H, W] it takes, its number of classes)."""
    import torch

    from mnist_exp.inference import RawImageClassifier, load_classifier
    from mnist_exp.rundirs import find_checkpoint

    if fmt not in FORMATS:
        raise ConfigError(f"format={fmt} is not one of {', '.join(FORMATS)}")
    ckpt_path = find_checkpoint(str(ckpt_path), Path(log_dir))  # `last`: the newest last.ckpt
    module = load_classifier(ckpt_path)
    input_shape = tuple(module.hparams.input_shape)
    model = RawImageClassifier(module.net.to(memory_format=torch.contiguous_format), module.transform).eval()
    target = Path(output) if output else Path(ckpt_path).with_suffix(FORMATS[fmt])
    descriptor, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(descriptor)
    tmp = Path(name)  # unique: two exports at once never write into one temp file
    try:
        write_model(model, fmt, tmp, opset, input_shape)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, target)
    return target, input_shape, module.hparams.num_classes


def write_model(model: nn.Module, fmt: str, tmp: Path, opset: int, input_shape: tuple) -> None:
    import torch

    example = torch.zeros(2, *input_shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch marks TorchScript and the classic ONNX exporter as legacy
        warnings.simplefilter("ignore", DeprecationWarning)
        if fmt == "onnx":
            torch.onnx.export(
                model, (example,), str(tmp), dynamo=False, opset_version=opset,
                input_names=["images"], output_names=["probabilities"],
                dynamic_axes={"images": {0: "batch"}, "probabilities": {0: "batch"}},
            )
        else:
            torch.jit.save(torch.jit.trace(model, example), str(tmp))


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="export")
@one_line_errors
def main(cfg: DictConfig) -> None:
    check_required(cfg, "export")
    target, (channels, height, width), classes = export(cfg.ckpt_path, cfg.format, cfg.output, cfg.opset, cfg.paths.log_dir)
    print(f"Wrote {target} ({cfg.format}): float32 images [N, {channels}, {height}, {width}], pixels 0..255 "
          f"-> probabilities [N, {classes}]")


if __name__ == "__main__":
    cli.export()  # the front door of mnist-exp-export, with its argument rewriting
