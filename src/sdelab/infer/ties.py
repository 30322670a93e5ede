"""Near ties: where batched and one-at-a-time numerics may choose differently.

A batch's padding and row count change how the matrix products are blocked, so in bf16 two nearly tied choices
(the two best next tokens, or the two best labels) can swap against the same prompt run alone. Generation and
label scoring redo the rows whose top-two gap is below `near_tie(precision)` one at a time, so batching changes
no answer except by a wider margin than rounding (bench/vs_peers.py counts how often).
"""
from __future__ import annotations

# the top-two gap (logits, or summed log-probabilities) below which a row is redone alone. bf16 keeps 8 significant
# bits, so logits between 16 and 32 come in steps of 0.125: below one step the two choices are tied as far as bf16
# can tell. Measured on a trained SmolLM2 (docs/performance.md): of 256 prompts, 4 had a gap under one step and
# each batched path flipped one of them; a wider threshold (0.5) caught the one flip at 0.25-0.5 too, but redid 15
# rows and cost 2.5 s of a 5.7 s evaluation. fp32 rounding is far smaller.
NEAR_TIE = {"bf16": 0.125, "fp32": 1e-3}
RECHECK_SHARE = 0.25  # at most this share of a batch is redone alone (the narrowest gaps first)


def near_tie(precision: str) -> float:
    return NEAR_TIE.get(precision, NEAR_TIE["bf16"])


def narrowest(gaps: list[float], precision: str) -> list[int]:
    """Rows whose gap is a near tie, narrowest first, at most RECHECK_SHARE of the batch (at least one)."""
    low = sorted((g, r) for r, g in enumerate(gaps) if g < near_tie(precision))
    return [r for _, r in low[: max(1, int(len(gaps) * RECHECK_SHARE))]]
