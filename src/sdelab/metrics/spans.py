"""Span extraction (nested NER, event detection) metrics: micro precision / recall / F1 over (type, text) pairs,
strict (type and text exact) and soft, as the Sample Design Engineering code scored them: a predicted text is
replaced by the most similar gold text of the sentence (any type; difflib ratio > 0.5, lowercased), then (type,
text) must match. `ratio_contained` (GENIA's ner_metric_report.py) also needs one text to contain the other;
`ratio` (MAVEN's maven_eval.py) does not, and scores the distinct predictions (a repeated one is a false
positive). Plus format errors."""
from __future__ import annotations

from collections import Counter
from difflib import SequenceMatcher

import numpy as np

from sdelab.metrics.spec import MetricSpec

SOFT_RULES = ("ratio_contained", "ratio")


def _snap(text: str, gold_texts: list[str], contained: bool, threshold: float = 0.5) -> str:
    """`text` (lowercased) replaced by the first most similar of `gold_texts` (lowercased) when their
    SequenceMatcher ratio is above `threshold` (and, with `contained`, one contains the other)."""
    p = text.strip().lower()
    if not gold_texts:
        return p
    scores = [SequenceMatcher(a=p, b=g).ratio() for g in gold_texts]
    best = max(scores)
    g = gold_texts[scores.index(best)]
    if best > threshold and (not contained or g in p or p in g):
        return g
    return p


def soft_match(pred: str, gold: str, rule: str = "ratio_contained") -> bool:
    """Whether the soft rule takes `pred` for `gold` (the only gold text of its sentence)."""
    g = gold.strip().lower()
    return bool(g) and _snap(pred, [g], rule == "ratio_contained") == g


def _count(gold: list[tuple], pred: list[tuple], soft: str | None) -> tuple[int, int, int]:
    """(true positives, predicted, gold) for one example; strict: each gold span is matched at most once."""
    if soft is None:
        return sum((Counter(gold) & Counter(pred)).values()), len(pred), len(gold)
    g = [(t, x.strip().lower()) for t, x in gold]
    texts = [x for _, x in g]
    if soft == "ratio_contained":
        snapped = [(t, _snap(x, texts, True)) for t, x in pred]
        return sum((Counter(g) & Counter(snapped)).values()), len(pred), len(gold)
    distinct = list(dict.fromkeys((t, x.strip().lower()) for t, x in pred))
    hits = sum((t, _snap(x, texts, False)) in g for t, x in distinct)
    return min(hits, len(gold)), len(pred), len(gold)  # (maven_eval.py could count more hits than gold spans)


def prf_from_counts(sums: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Micro precision, recall and F1 of summed (true positives, predicted, gold) counts ([b, 3]); 0 where a
    denominator is 0."""
    tp, npred, ngold = sums[:, 0], sums[:, 1], sums[:, 2]
    p = np.divide(tp, npred, out=np.zeros_like(tp), where=npred > 0)
    r = np.divide(tp, ngold, out=np.zeros_like(tp), where=ngold > 0)
    return p, r, np.divide(2 * p * r, p + r, out=np.zeros_like(tp), where=(p + r) > 0)


def _pairs(spans) -> list[tuple]:
    return [tuple(x) for x in spans or ()]  # (JSON rows hold [type, text] lists)


F1 = MetricSpec("f1", lambda gold, pred: list(_count(_pairs(gold), _pairs(pred), soft=None)),
                lambda sums, n: prf_from_counts(sums)[2])


def prf(gold: list[tuple], preds: list[tuple | None], soft: str | None) -> dict:
    counts = np.array([_count(_pairs(g), _pairs(p), soft) for g, p in zip(gold, preds)], dtype=float)
    p, r, f1 = prf_from_counts(counts.reshape(-1, 3).sum(0, keepdims=True))
    return {"precision": float(p[0]), "recall": float(r[0]), "f1": float(f1[0])}


def span_metrics(gold: list[tuple], strict: list[tuple | None], lenient: list[tuple | None],
                 errors: list[str | None], soft: str = "ratio_contained") -> dict:
    """strict: an example with a format error contributes no predictions; lenient: its salvaged ones. `soft`:
    the soft rule (SOFT_RULES) of the task."""
    kinds = Counter(e for e in errors if e)
    n = len(gold)
    out = {"n": n}
    for name, preds in (("strict", strict), ("lenient", lenient)):
        for mode in ("exact", "soft"):
            for k, v in prf(gold, preds, soft if mode == "soft" else None).items():
                out[f"{k}" if (name, mode) == ("strict", "exact") else f"{name}_{mode}_{k}"] = v
    out.update(format_errors=sum(kinds.values()), format_error_rate=sum(kinds.values()) / n if n else 0.0,
               error_kinds=dict(sorted(kinds.items())))
    return out
