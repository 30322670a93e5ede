"""Load a resolved model and its tokenizer, in the precision the run asks for."""
from __future__ import annotations

import contextlib
import os
import warnings
from typing import Literal

import torch

from sdelab.errors import SdelabError
from sdelab.models.catalog import ResolvedModel

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


def load_tokenizer(model: ResolvedModel):
    from transformers import AutoTokenizer
    try:
        tok = AutoTokenizer.from_pretrained(model.path)
    except OSError as e:
        raise SdelabError(f"cannot load the tokenizer of '{model.name}': {e}") from None
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def load_causal_lm(model: ResolvedModel, precision: Literal["bf16", "fp32"]):
    from transformers import AutoModelForCausalLM
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    try:
        with quiet_transformers():
            lm = AutoModelForCausalLM.from_pretrained(model.path, dtype=dtype)
    except OSError as e:
        raise SdelabError(f"cannot load model '{model.name}' from {model.path}: {e}") from None
    lm.config.use_cache = False
    return lm


@contextlib.contextmanager
def quiet_transformers():
    """transformers' per-tensor loading bars and deprecation chatter hide sdelab's own progress."""
    from transformers.utils import logging as hf_logging
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        hf_logging.enable_progress_bar()
        hf_logging.set_verbosity(verbosity)


def set_threads() -> int:
    """Use every core the process may run on (torch defaults to physical cores, sometimes fewer)."""
    n = int(os.environ.get("SDELAB_THREADS", 0)) or len(os.sched_getaffinity(0))
    torch.set_num_threads(n)
    return n
