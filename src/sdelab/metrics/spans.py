"""Span extraction (nested NER, event detection) metrics: micro precision / recall / F1 over (type, text) pairs,
strict (type and text exact) and soft (same type, one text contains the other and their length ratio > 0.5, as
the Sample Design Engineering paper's code scored it), plus format errors."""
from __future__ import annotations

from collections import Counter

import numpy as np

from sdelab.metrics.spec import MetricSpec


def soft_match(a: str, b: str, threshold: float = 0.5) -> bool:
    a, b = a.strip().lower(), b.strip().lower()
    if not a or not b:
        return False
    short, long_ = sorted((a, b), key=len)
    return short in long_ and len(short) / len(long_) > threshold


def _count(gold: list[tuple], pred: list[tuple], soft: bool) -> tuple[int, int, int]:
    """(true positives, predicted, gold) for one example; each gold span is matched at most once."""
    if not soft:
        g, p = Counter(gold), Counter(pred)
        return sum((g & p).values()), len(pred), len(gold)
    unused = list(gold)
    tp = 0
    for t, x in pred:
        hit = next((i for i, (gt, gx) in enumerate(unused) if gt == t and soft_match(gx, x)), None)
        if hit is not None:
            unused.pop(hit)
            tp += 1
    return tp, len(pred), len(gold)


def prf_from_counts(sums: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Micro precision, recall and F1 of summed (true positives, predicted, gold) counts ([b, 3]); 0 where a
    denominator is 0."""
    tp, npred, ngold = sums[:, 0], sums[:, 1], sums[:, 2]
    p = np.divide(tp, npred, out=np.zeros_like(tp), where=npred > 0)
    r = np.divide(tp, ngold, out=np.zeros_like(tp), where=ngold > 0)
    return p, r, np.divide(2 * p * r, p + r, out=np.zeros_like(tp), where=(p + r) > 0)


def _pairs(spans) -> list[tuple]:
    return [tuple(x) for x in spans or ()]  # (JSON rows hold [type, text] lists)


F1 = MetricSpec("f1", lambda gold, pred: list(_count(_pairs(gold), _pairs(pred), soft=False)),
                lambda sums, n: prf_from_counts(sums)[2])


def prf(gold: list[tuple], preds: list[tuple | None], soft: bool) -> dict:
    counts = np.array([_count(_pairs(g), _pairs(p), soft) for g, p in zip(gold, preds)], dtype=float)
    p, r, f1 = prf_from_counts(counts.reshape(-1, 3).sum(0, keepdims=True))
    return {"precision": float(p[0]), "recall": float(r[0]), "f1": float(f1[0])}


def span_metrics(gold: list[tuple], strict: list[tuple | None], lenient: list[tuple | None],
                 errors: list[str | None]) -> dict:
    """strict: an example with a format error contributes no predictions; lenient: its salvaged ones."""
    kinds = Counter(e for e in errors if e)
    n = len(gold)
    out = {"n": n}
    for name, preds in (("strict", strict), ("lenient", lenient)):
        for mode in ("exact", "soft"):
            for k, v in prf(gold, preds, soft=mode == "soft").items():
                out[f"{k}" if (name, mode) == ("strict", "exact") else f"{name}_{mode}_{k}"] = v
    out.update(format_errors=sum(kinds.values()), format_error_rate=sum(kinds.values()) / n if n else 0.0,
               error_kinds=dict(sorted(kinds.items())))
    return out
