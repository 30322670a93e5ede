"""The run's numeric precision: bf16 where the hardware computes it natively, else fp32; and the autocast
context that applies it to a forward pass (training and inference alike)."""
from __future__ import annotations

from contextlib import nullcontext
from typing import Literal

import torch

Precision = Literal["auto", "bf16", "fp32"]


def bf16_supported() -> bool:
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    try:
        return bool(torch.cpu._is_avx512_bf16_supported())  # noqa: SLF001 (no public equivalent)
    except AttributeError:
        return False


def resolve_precision(precision: Precision) -> Literal["bf16", "fp32"]:
    """'auto' is bf16 where the hardware computes it natively (2-3x faster here, see docs/performance.md)."""
    if precision == "auto":
        return "bf16" if bf16_supported() else "fp32"
    return precision


def autocast(precision: str):
    if precision == "bf16":
        return torch.autocast(device_type="cuda" if torch.cuda.is_available() else "cpu", dtype=torch.bfloat16)
    return nullcontext()
