"""Where every model runs, and in which precision: one decision, made once per run and applied to every model
(trained, merged, untuned, head, encoder, teacher) and every forward pass.

The device: `SDELAB_DEVICE`, else the study's `device:`, else the best there is (CUDA, then Apple MPS, then the
CPU). Under a distributed launch (`accelerate launch`, `torchrun`) each process takes the CUDA device of its local
rank. The precision follows from the device: bf16 where the device computes it natively, fp16 with gradient
scaling where only fp16 is fast (older GPUs), fp32 otherwise; `train.precision` may name one. The decision is a
function of `Hardware` (what torch reports), so it is tested here with any machine mocked; the code after it has
no branch per device type beyond what torch's own calls take as an argument.
"""
from __future__ import annotations

import os
import re
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Literal

import torch

from sdelab.errors import SdelabError

DEVICE_ENV = "SDELAB_DEVICE"
DEVICE_NAMES = re.compile(r"auto|cpu|mps|cuda(:\d+)?")  # what `device:` and SDELAB_DEVICE accept

Precision = Literal["auto", "bf16", "fp16", "fp32"]
Resolved = Literal["bf16", "fp16", "fp32"]
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


@dataclass(frozen=True)
class Hardware:
    """What torch reports about the machine (the only input of the decision besides what the user asked)."""
    cuda_devices: int = 0
    cuda_bf16: bool = False  # Ampere and newer
    mps: bool = False
    mps_bf16: bool = False  # macOS 14 and newer
    cpu_bf16: bool = False  # AVX512-BF16 / AMX: bf16 matrix products in hardware


def probe() -> Hardware:
    cuda = torch.cuda.device_count() if torch.cuda.is_available() else 0
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    try:
        cpu_bf16 = bool(torch.cpu._is_avx512_bf16_supported())  # noqa: SLF001 (no public equivalent)
    except AttributeError:
        cpu_bf16 = False
    return Hardware(cuda, bool(cuda) and torch.cuda.is_bf16_supported(), mps,
                    mps and torch.backends.mps.is_macos_or_newer(14, 0), cpu_bf16)


def resolve_device(requested: str | None = None, env: dict | None = None,
                   hw: Hardware | None = None) -> torch.device:
    """The run's device: SDELAB_DEVICE, else `requested` (the study's `device:`), else the best available.
    A device the machine does not have is an error naming where it was asked for."""
    env = os.environ if env is None else env
    hw = probe() if hw is None else hw
    where, name = (DEVICE_ENV, env[DEVICE_ENV].strip()) if env.get(DEVICE_ENV, "").strip() else \
        ("the study's device:", requested or "auto")
    if not DEVICE_NAMES.fullmatch(name):
        raise SdelabError(f"{where} '{name}' is not a device: use auto, cpu, cuda, cuda:N or mps",
                          field="device" if where != DEVICE_ENV else None)
    if name == "auto":
        name = "cuda" if hw.cuda_devices else "mps" if hw.mps else "cpu"
    if name.startswith("cuda"):
        if not hw.cuda_devices:
            raise SdelabError(f"{where} asks for '{name}', and torch sees no CUDA device (torch {torch.__version__}"
                              "; a CPU build of torch has none): use cpu, or install a CUDA build of torch",
                              field="device" if where != DEVICE_ENV else None)
        index = int(name.split(":")[1]) if ":" in name else int(env.get("LOCAL_RANK", 0))
        if index >= hw.cuda_devices:
            raise SdelabError(f"{where} asks for cuda:{index}, and this machine has {hw.cuda_devices} CUDA "
                              f"device(s) (cuda:0 to cuda:{hw.cuda_devices - 1})",
                              field="device" if where != DEVICE_ENV else None)
        return torch.device("cuda", index)
    if name == "mps" and not hw.mps:
        raise SdelabError(f"{where} asks for 'mps', and torch sees no Apple GPU: use cpu",
                          field="device" if where != DEVICE_ENV else None)
    return torch.device(name)


def resolve_precision(precision: Precision, device: torch.device | str = "cpu",
                      hw: Hardware | None = None) -> Resolved:
    """'auto': bf16 where `device` computes it natively (on CPU: 2-3x faster than fp32 with AVX512-BF16, see
    docs/performance.md), fp16 where only fp16 is fast (a GPU before Ampere; trained with gradient scaling),
    else fp32. A named precision is taken as asked."""
    if precision != "auto":
        return precision
    kind = torch.device(device).type
    hw = probe() if hw is None else hw
    if kind == "cuda":
        return "bf16" if hw.cuda_bf16 else "fp16"
    if kind == "mps":
        return "bf16" if hw.mps_bf16 else "fp16"
    return "bf16" if hw.cpu_bf16 else "fp32"


def dtype(precision: str) -> torch.dtype:
    """The dtype a frozen base model's weights are loaded in (trained weights stay fp32)."""
    return DTYPES[precision]


def autocast(precision: str, device: torch.device | str = "cpu"):
    """The forward pass in `precision` on `device` (training and inference alike); fp32: no autocast."""
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=DTYPES[precision])


def grad_scaler(precision: str, device: torch.device | str = "cpu") -> torch.amp.GradScaler | None:
    """fp16 gradients underflow without loss scaling; bf16 and fp32 need none."""
    return torch.amp.GradScaler(torch.device(device).type) if precision == "fp16" else None


def place(model, device: torch.device | str):
    """Move a loaded model to the run's device (a no-op where it is already)."""
    return model.to(torch.device(device))


def device_of(model) -> torch.device:
    """Where a model's weights are (its inputs go there)."""
    return next(model.parameters()).device
