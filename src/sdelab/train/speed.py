"""How the training loop runs fastest on this cell, decided once before it starts and undone when it ends.

Two levers, measured in bench/train_levers.py and docs/performance.md (one CPU, ratios in one run):

- **Attention**: on CPU, short samples train faster with the plain ("eager") attention than with torch's fused
  SDPA kernel, whose backward pass is slow for short rows (1.24x uncompiled, 1.43x compiled, SmolLM2 on SST-2);
  from ~384 tokens on, SDPA wins and eager attention's score matrices cost memory. Eager where the longest
  sample has at most `EAGER_MAX_TOKENS` tokens and the model is on CPU; the model's own choice otherwise.
- **Regional compilation**: each repeated decoder block is `torch.compile`d (dynamic shapes: one compile serves
  every batch length), which fuses the elementwise and normalisation work that dominates a CPU step once the
  matrix products are fast (1.5-1.8x). Compiling costs ~20-40 s on 2 cores, paid once per process and model, so
  `compile: auto` compiles only cells of at least `COMPILE_MIN_TOKENS` training tokens, and only decoder blocks
  (an encoder's blocks measured 1.03x).

The decision and its reason go into the cell's manifest (`train.speed`); neither lever changes what is learned
beyond rounding, so neither is part of a cell's id.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import asdict, dataclass

import torch

COMPILE_MIN_TOKENS = 30_000
EAGER_MAX_TOKENS = 256


@dataclass
class SpeedPlan:
    compile: bool
    attention: str | None  # the attention implementation trained with (None: the model's own, unchanged)
    why: str

    def to_dict(self) -> dict:
        return asdict(self)


def pretrained_of(module: torch.nn.Module):
    """The transformers model inside `module` (a loss wrapper, a peft wrapper), or None."""
    from transformers import PreTrainedModel
    return next((m for m in module.modules() if isinstance(m, PreTrainedModel)), None)


def repeated_blocks(module: torch.nn.Module) -> list[torch.nn.Module]:
    """The model's stack of identical blocks (decoder or encoder layers): the largest ModuleList of one class."""
    best: list[torch.nn.Module] = []
    for m in module.modules():
        if isinstance(m, torch.nn.ModuleList) and len(m) > 1 and len({type(c) for c in m}) == 1 and len(m) > len(best):
            best = list(m)
    return best


def plan_speed(module: torch.nn.Module, setting: str, tokens: int, longest: int) -> SpeedPlan:
    """`setting` is train.compile ('auto', 'on', 'off'); `tokens` the cell's planned training tokens."""
    model = pretrained_of(module)
    on_cpu = next(module.parameters()).device.type == "cpu"
    attention = None
    if model is not None and on_cpu and longest <= EAGER_MAX_TOKENS \
            and getattr(model.config, "_attn_implementation", None) == "sdpa":
        attention = "eager"
    blocks = repeated_blocks(module)
    decoder = bool(blocks) and type(blocks[0]).__name__.endswith("DecoderLayer")
    if setting == "on":
        compile_, why = bool(blocks), "train.compile: on" if blocks else "train.compile: on, but no repeated block"
    elif setting == "off":
        compile_, why = False, "train.compile: off"
    elif not decoder:
        compile_, why = False, "auto: not a decoder (compiling an encoder's blocks measured 1.03x)"
    elif tokens < COMPILE_MIN_TOKENS:
        compile_, why = False, f"auto: {tokens:,} training tokens < {COMPILE_MIN_TOKENS:,} (compiling would not pay)"
    else:
        compile_, why = True, f"auto: {tokens:,} training tokens >= {COMPILE_MIN_TOKENS:,}"
    if attention:
        why += f"; eager attention (CPU, longest sample {longest} <= {EAGER_MAX_TOKENS} tokens)"
    return SpeedPlan(compile_, attention, why)


@contextmanager
def applied(module: torch.nn.Module, plan: SpeedPlan):
    """Train with `plan` in force; afterwards the model evaluates as it was loaded (its attention, no compiled
    blocks: generation's cached decoding would recompile them)."""
    model = pretrained_of(module)
    before = getattr(model.config, "_attn_implementation", None) if model is not None else None
    blocks = repeated_blocks(module) if plan.compile else []
    own = {id(b): vars(b).get("forward") for b in blocks}  # a forward set on the instance before (a hook's)
    wrapped = []
    try:
        if plan.attention and model is not None:
            model.set_attn_implementation(plan.attention)
        for b in blocks:  # an instance attribute: deleting it restores the class's forward
            b.forward = torch.compile(b.forward, dynamic=True)
            wrapped.append(b)
        yield
    finally:
        for b in wrapped:
            if own[id(b)] is None:
                del b.forward
            else:
                b.forward = own[id(b)]
        if plan.attention and model is not None and before:
            model.set_attn_implementation(before)
