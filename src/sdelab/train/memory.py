"""Will a training step fit in memory? Estimated before the first step, from the model's dimensions and the
longest micro-batch, so that a cell either fits or says why, instead of being killed by the kernel hours in.

Peak memory of a step above the loaded model, per token of the padded micro-batch and per layer
(bench/train_memory.py measures it on SmolLM2-135M and Qwen2.5-0.5B at 128-2048 tokens and fits `COEFFICIENTS` by
least squares of the relative error; a unit test checks the shipped constants against that file):

    a * hidden  +  b * intermediate  +  c * hidden (eager attention, which the loop uses up to 256 tokens)

Eager attention's score matrices did not show at those lengths; beyond them (a model that only has eager
attention) `EAGER_SCORE_BYTES` per score is added, from the matrices' sizes (fp32 scores, bf16 probabilities),
not measured.

plus the fp32 gradients and AdamW moments of the trainable weights (12 bytes each). When the longest micro-batch
would not fit in `SAFETY` of the memory available, each batch that would not is cut into the fewest chunks that
fit, run one after another into the same gradients, each chunk's loss weighted by its share of the batch's
labelled tokens (samples, for a classification head): the update equals the whole batch's (up to rounding), so a
cell's result does not depend on the machine's memory. A single sample that does not fit is refused.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from sdelab.errors import SdelabError
from sdelab.models.tokenize import IGNORE
from sdelab.train.speed import pretrained_of

COEFFICIENTS = (33.94, 10.83, 42.46)  # (a, b, c): bench/train_memory.py's fit, results in bench/results/train_memory.json
EAGER_SCORE_BYTES = 6  # per attention score beyond the calibrated lengths (not measured: see above)
CALIBRATED_EAGER = 256  # the longest eager-attention micro-batch measured
SAFETY = 0.75  # share of the available memory a step may take (allocator fragmentation, the evaluation after it)
OPTIMIZER_BYTES = 12  # per trainable weight: fp32 gradient and AdamW's two moments


def dimensions(module: torch.nn.Module) -> dict:
    """What the estimate needs of a model: weight bytes, trainable weights, layers, hidden, intermediate, heads."""
    model = pretrained_of(module)
    cfg = model.config if model is not None else None

    def get(*names, default=0):
        return next((int(getattr(cfg, n)) for n in names if cfg is not None and getattr(cfg, n, None)), default)

    hidden = get("hidden_size", "d_model", "n_embd")
    return {"weight_bytes": sum(p.numel() * p.element_size() for p in module.parameters()),
            "trainable": sum(p.numel() for p in module.parameters() if p.requires_grad),
            "layers": get("num_hidden_layers", "n_layer", "num_layers"), "hidden": hidden,
            "intermediate": get("intermediate_size", "n_inner", "ffn_dim", default=4 * hidden),
            "heads": get("num_attention_heads", "n_head")}


def terms(dims: dict, rows: int, length: int, eager: bool) -> list[float]:
    """The estimate's fitted terms for a micro-batch of `rows` samples padded to `length` tokens."""
    per_layer = rows * length * dims["layers"]
    return [per_layer * dims["hidden"], per_layer * dims["intermediate"], per_layer * dims["hidden"] * eager]


def step_bytes(dims: dict, rows: int, length: int, eager: bool) -> float:
    """Estimated peak bytes of one forward and backward pass above the loaded model."""
    fitted = sum(c * t for c, t in zip(COEFFICIENTS, terms(dims, rows, length, eager)))
    scores = rows * dims["layers"] * dims["heads"] * length * length if eager and length > CALIBRATED_EAGER else 0
    return fitted + EAGER_SCORE_BYTES * scores


def available_bytes(device: torch.device | str = "cpu") -> int | None:
    """Memory this process may still take on `device`: a GPU's free memory; for the CPU, MemAvailable, or less
    under a cgroup limit (containers, Slurm), shared with the other processes of this machine (data parallel)."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type != "cpu":  # (MPS shares the machine's memory; no figure of its own)
        return None
    host = host_available_bytes()
    return None if host is None else host // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", 1)))


def host_available_bytes() -> int | None:
    """The machine's memory this process may still take: MemAvailable, or less under a cgroup limit."""
    avail = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                avail = int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
        if limit != "max":
            avail = min(avail if avail is not None else 1 << 62, int(limit) - used)
    except (OSError, ValueError):
        pass
    return avail


def static_needed(module: torch.nn.Module) -> dict:
    """The weights, and the trainable weights' gradients and AdamW moments (fp32), in GiB."""
    d = dimensions(module)
    return {"parameters": sum(p.numel() for p in module.parameters()), "trainable": d["trainable"],
            "weights_gib": round(d["weight_bytes"] / 2**30, 6),
            "gradients_adam_gib": round(d["trainable"] * OPTIMIZER_BYTES / 2**30, 6)}


@dataclass(frozen=True)
class Chunk:
    step: int  # the batch of the plan it belongs to (1-based, as the loop counts steps)
    indices: list[int]
    weight: float  # its share of the batch's loss (times the processes: DDP averages their gradients)
    last: bool  # the batch's last chunk (of this process's share): the optimizer may step after it
    counted: bool = True  # False: a stand-in that keeps a process in step with the others (weight 0)


def labelled(item) -> int:
    """What a sample weighs in its batch's mean loss: its labelled tokens (generative), else 1 (one row)."""
    if len(item.labels) == len(item.input_ids):  # token labels (the causal LM loss shifts them by one)
        return sum(1 for t in item.labels[1:] if t != IGNORE)
    return 1


def chunked(plan: list[list[int]], items: list, dims: dict, eager: bool, budget: float | None,
            where: str = "train", rank: int = 0, world: int = 1) -> tuple[list[Chunk], dict]:
    """Every batch of `plan` as the chunks it runs in (one, unless it would not fit in `budget` bytes), and a
    summary for the manifest. Refuses when a single sample would not fit.

    With `world` processes (data parallel), process `rank` runs its share of every batch (every world-th sample),
    each chunk weighted by its share of the whole batch's labelled tokens times `world`, so that DDP's mean of the
    processes' gradients is the gradient of the one-process batch. A process whose share is empty (a batch
    smaller than the processes) runs a stand-in of weight 0, so every process takes part in every update."""
    lengths = [len(e.input_ids) for e in items]
    weights = [labelled(e) for e in items]
    out, split, worst = [], 0, 0.0
    for step, whole in enumerate(plan, 1):
        total = sum(weights[i] for i in whole) or 1
        batch = whole[rank::world]
        if not batch:
            out.append(Chunk(step, whole[:1], 0.0, True, counted=False))
            continue
        longest = max(lengths[i] for i in batch)
        need = step_bytes(dims, len(batch), longest, eager)
        worst = max(worst, need)
        k = 1
        if budget is not None and need > budget:
            one = step_bytes(dims, 1, longest, eager)
            if one > budget:
                raise SdelabError(
                    f"one {longest}-token sample needs about {one / 2**30:.1f} GiB to train and "
                    f"{budget / 2**30:.1f} GiB are available: lower train.max_length, or use a smaller model",
                    field="train.max_length")
            k = min(len(batch), math.ceil(need / budget))
            while k < len(batch) and step_bytes(dims, math.ceil(len(batch) / k), longest, eager) > budget:
                k += 1
            split += 1
        parts = [batch[j * len(batch) // k:(j + 1) * len(batch) // k] for j in range(k)]
        out += [Chunk(step, p, world * sum(weights[i] for i in p) / total, j == k - 1) for j, p in enumerate(parts)]
    summary = {"estimated_step_gib": round(worst / 2**30, 3),
               "budget_gib": round(budget / 2**30, 3) if budget is not None else None, "batches_split": split,
               "chunks": len(out)}
    if split:
        summary["why"] = (f"{split} of {len(plan)} batches would not fit in {budget / 2**30:.1f} GiB: each runs in "
                          f"chunks accumulated into one update ({where})")
    return out, summary
