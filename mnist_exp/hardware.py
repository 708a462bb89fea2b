"""What this machine runs fast, and the training precision that follows from it.

`trainer.precision: auto` (the default) picks what the hardware runs natively:

- bf16-mixed on CUDA GPUs with bf16 units (Ampere and newer) and on CPUs with native bf16
  instructions (AMX or AVX512-BF16) that torch and oneDNN are allowed to use;
- 16-mixed on older CUDA GPUs;
- 32-true everywhere else: on an AVX2-only CPU, bf16 autocast is emulated and was measured
  several times slower than fp32 (README, Performance).

An explicit `trainer.precision=...` is used as given. ATEN_CPU_CAPABILITY and ONEDNN_MAX_CPU_ISA,
which cap the instructions torch uses (and emulate an older CPU on a newer one), are respected.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping
from typing import Any

NATIVE_BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")
# oneDNN's ISA names (ONEDNN_MAX_CPU_ISA) from which on bf16 instructions are allowed.
ONEDNN_ISAS_WITH_BF16 = (
    "AVX512_CORE_BF16",
    "AVX512_CORE_FP16",
    "AVX512_CORE_AMX",
    "AVX512_CORE_AMX_FP16",
    "AVX10_1_512",
    "AVX10_1_512_AMX",
    "AVX10_1_512_AMX_FP16",
    "AVX10_2_512",
    "AVX10_2_512_AMX_2",
    "ALL",
    "DEFAULT",
)


def choose_precision(
    device_type: str,
    cuda_bf16: bool = False,
    cpu_flags: Mapping[str, Any] | None = None,
    aten_capability: str = "",
    onednn_max_isa: str | None = None,
) -> tuple[str, str]:
    """(Lightning precision, why) for a device; a pure function of what the hardware reports."""
    if device_type == "cuda":
        if cuda_bf16:
            return "bf16-mixed", "this GPU computes in bf16 natively"
        return "16-mixed", "this GPU has no bf16 units; fp16 autocast with loss scaling"
    if device_type != "cpu":
        return "32-true", f"no mixed precision is set up for {device_type} devices"
    units = [flag for flag in NATIVE_BF16_CPU_FLAGS if (cpu_flags or {}).get(flag)]
    if not units:
        return (
            "32-true",
            f"this CPU ({aten_capability or 'unknown'}) has no native bf16 (no AMX or AVX512-BF16), "
            "so bf16 would be emulated and slower",
        )
    if not aten_capability.upper().startswith("AVX512"):
        return (
            "32-true",
            f"the CPU has {'/'.join(units)} but torch is capped at {aten_capability} (ATEN_CPU_CAPABILITY)",
        )
    if onednn_max_isa and onednn_max_isa.upper() not in ONEDNN_ISAS_WITH_BF16:
        return "32-true", f"the CPU has {'/'.join(units)} but oneDNN is capped at {onednn_max_isa} (ONEDNN_MAX_CPU_ISA)"
    return "bf16-mixed", f"this CPU computes in bf16 natively ({'/'.join(units)})"


def device_type(accelerator: str) -> str:
    """The device Lightning will train on for `trainer.accelerator`."""
    import torch

    if accelerator in ("gpu", "cuda"):
        return "cuda"
    if accelerator == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    return str(accelerator)


def describe(device: str) -> dict:
    """The hardware a run used, for metrics.json and benchmark tables."""
    import torch

    capabilities = torch.cpu.get_capabilities() if hasattr(torch.cpu, "get_capabilities") else {}
    info = {
        "device": device,
        "cpu": capabilities.get("cpu_name") or platform.processor() or platform.machine(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "native_bf16_cpu": any(capabilities.get(flag) for flag in NATIVE_BF16_CPU_FLAGS),
        "cpu_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if device == "cuda" and torch.cuda.is_available() else None,
    }
    emulated = {k: os.environ[k] for k in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA") if os.environ.get(k)}
    if emulated:
        info["isa_caps"] = emulated
    return info


def resolve_precision(precision: Any, accelerator: str) -> tuple[Any, str]:
    """(the precision to train with, why): `auto` is chosen from the hardware, anything else kept."""
    if str(precision) != "auto":
        return precision, "set in the config"
    import torch

    device = device_type(accelerator)
    capabilities = torch.cpu.get_capabilities() if hasattr(torch.cpu, "get_capabilities") else {}
    chosen, why = choose_precision(
        device,
        cuda_bf16=device == "cuda"
        and torch.cuda.is_available()
        and torch.cuda.is_bf16_supported(including_emulation=False),
        cpu_flags=capabilities,
        aten_capability=torch.backends.cpu.get_cpu_capability(),
        onednn_max_isa=os.environ.get("ONEDNN_MAX_CPU_ISA"),
    )
    return chosen, f"auto: {why}"


def cpu_kind() -> str:
    """One line naming this CPU as the benchmarks and CI name it: model, the instructions torch uses, native
    bf16 or not, and the precision `auto` picks for it."""
    info = describe("cpu")
    precision, _ = resolve_precision("auto", "cpu")
    caps = ", capped by " + " ".join(f"{k}={v}" for k, v in info["isa_caps"].items()) if "isa_caps" in info else ""
    bf16 = "native bf16" if info["native_bf16_cpu"] else "no native bf16"
    return f"{info['cpu']} ({info['cpu_capability']}, {bf16}{caps}; precision auto -> {precision})"


if __name__ == "__main__":
    print(cpu_kind())
