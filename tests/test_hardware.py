"""Precision chosen by the hardware; start-up that imports nothing heavy before it is needed."""

import json
import subprocess
import sys

import pytest

from mnist_exp import PROJECT_ROOT
from mnist_exp.hardware import choose_precision, resolve_precision
from tests.helpers import compose

AMX = {"amx_bf16": True, "avx512_bf16": True, "avx2": True}
AVX512_BF16 = {"avx512_bf16": True, "avx2": True}
AVX2_ONLY = {"avx2": True}


@pytest.mark.parametrize(
    "device, cuda_bf16, flags, aten, onednn, expected",
    [
        ("cuda", True, AVX2_ONLY, "AVX2", None, "bf16-mixed"),  # Ampere and newer
        ("cuda", False, AMX, "AVX512", None, "16-mixed"),  # older GPUs: fp16 with loss scaling
        ("cpu", False, AMX, "AVX512", None, "bf16-mixed"),  # AMX
        ("cpu", False, AVX512_BF16, "AVX512", None, "bf16-mixed"),
        ("cpu", False, AVX2_ONLY, "AVX2", None, "32-true"),  # bf16 would be emulated
        ("cpu", False, AMX, "AVX2", "AVX2", "32-true"),  # an AMX CPU under the AVX2 emulation
        ("cpu", False, AMX, "AVX512", "AVX2", "32-true"),  # oneDNN capped below bf16
        ("cpu", False, AMX, "AVX512", "avx512_core_amx", "bf16-mixed"),
        ("mps", False, {}, "", None, "32-true"),
    ],
)
def test_precision_follows_the_hardware(device, cuda_bf16, flags, aten, onednn, expected):
    chosen, why = choose_precision(
        device, cuda_bf16=cuda_bf16, cpu_flags=flags, aten_capability=aten, onednn_max_isa=onednn
    )
    assert chosen == expected
    assert why and "\n" not in why


def test_an_explicit_precision_wins():
    assert resolve_precision("bf16-mixed", "cpu") == ("bf16-mixed", "set in the config")
    chosen, why = resolve_precision("auto", "cpu")
    assert chosen in ("bf16-mixed", "32-true") and why.startswith("auto: ")


@pytest.mark.parametrize("preset", [None, "tutorial", "fast", "best"])
def test_every_preset_uses_the_auto_precision(preset):
    cfg = compose([f"experiment={preset}"] if preset else [])
    assert cfg.trainer.precision == "auto"
    assert (
        compose([*([f"experiment={preset}"] if preset else []), "trainer.precision=32-true"]).trainer.precision
        == "32-true"
    )


@pytest.mark.slow  # a real run / subprocesses
def test_a_run_records_its_precision_and_hardware(synthetic_run):
    _, run_dir = synthetic_run
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["precision"] == resolve_precision("auto", "cpu")[0]
    hardware = metrics["hardware"]
    assert hardware["device"] == "cpu" and hardware["cpu"] and hardware["cpu_capability"]
    assert f"Precision {metrics['precision']} (auto: " in (run_dir / "train.log").read_text()


IMPORTS_AFTER = """
import runpy, sys
module = sys.argv[1]
sys.argv, code = [module, *sys.argv[2:]], 0
try:
    runpy.run_module(module, run_name="__main__")
except SystemExit as stop:
    code = stop.code
heavy = ("torch", "pytorch_lightning", "torchvision", "kornia", "matplotlib", "onnx", "optuna")
heavy = sorted(m for m in heavy if m in sys.modules)
print("HEAVY", ",".join(heavy), "EXIT", code, file=sys.stderr)
"""


# A bad model, optimizer or schedule value is found by building those (torch only: no Lightning, which
# costs ~6 s to import on a 2-core CPU); the rest costs nothing.
@pytest.mark.parametrize(
    "args, code, heavy",
    [
        (["--help"], 0, ""),
        (["--cfg", "job"], 0, ""),
        (["optimizer=adamm"], 1, ""),
        (["model.channels=0"], 1, "torch"),
        (["optimizer.lr=-1"], 1, "torch"),
    ],
)
def test_help_cfg_and_config_errors_import_nothing_heavy(args, code, heavy, tmp_path):
    command = [sys.executable, "-c", IMPORTS_AFTER, "mnist_exp", *args, f"paths.log_dir={tmp_path}"]
    result = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert f"HEAVY {heavy} EXIT {code}" in result.stderr, result.stderr[-2000:]
    assert not any(tmp_path.iterdir())  # nothing written


@pytest.mark.parametrize("module", ["mnist_exp.evaluate", "mnist_exp.predict", "mnist_exp.export"])
@pytest.mark.parametrize("args", [["--help"], ["--cfg", "job"]])
def test_the_other_commands_answer_help_and_cfg_without_importing_torch(module, args, tmp_path):
    # (`mnist-exp-evaluate --help` took 5 s where train's took 0.7: the command's module imports torch and Lightning)
    command = [sys.executable, "-c", IMPORTS_AFTER, module, *args, f"paths.log_dir={tmp_path}"]
    result = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert "HEAVY  EXIT 0" in result.stderr, result.stderr[-2000:]
    assert "ckpt_path" in result.stdout and not any(tmp_path.iterdir())
