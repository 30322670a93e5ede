"""Span extraction (nested NER, event detection) metrics: micro precision / recall / F1 over (type, text) pairs,
strict (type and text exact) and soft (same type, one text contains the other and their length ratio > 0.5, as
the Sample Design Engineering paper's code scored it), plus format errors."""
from __future__ import annotations

from collections import Counter


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


def prf(gold: list[tuple], preds: list[tuple | None], soft: bool) -> dict:
    tp = np_ = ng = 0
    for g, p in zip(gold, preds):
        a, b, c = _count(list(g), list(p or ()), soft)
        tp, np_, ng = tp + a, np_ + b, ng + c
    precision = tp / np_ if np_ else 0.0
    recall = tp / ng if ng else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


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
