"""Multi-aspect sentiment metrics, as the Sample Design Engineering paper scored them: weighted Cohen's kappa over
the four labels pooled across aspects, slot accuracy, per-aspect accuracy, exact match, format errors."""
from __future__ import annotations

from collections import Counter

import numpy as np

from sdelab.tasks.task import UNMENTIONED

ORDER = ("positive", "neutral", "negative", UNMENTIONED)
# rows: gold, columns: prediction, in ORDER (the paper's weight matrix; partial credit for near misses)
PAPER_WEIGHTS = np.array([[1, .5, 0, .5],
                          [.67, 1, .67, .67],
                          [0, .5, 1, .5],
                          [.5, .67, .5, 1]])
INVALID = "<invalid>"  # a slot of an example whose output had a format error, under strict scoring


def weighted_kappa(gold: list[str], pred: list[str], labels=ORDER, weights=PAPER_WEIGHTS) -> float:
    """Cohen's kappa with agreement weights W (1 = full agreement): (p_o - p_e) / (1 - p_e), where
    p_o = sum W*O / N and p_e = sum W*E / N with E the outer product of the marginals / N. A prediction outside
    `labels` (a format error) gets weight 0 against every gold label."""
    k = len(labels)
    idx = {lab: i for i, lab in enumerate(labels)}
    obs = np.zeros((k, k + 1))
    for g, p in zip(gold, pred):
        obs[idx[g], idx.get(p, k)] += 1
    n = obs.sum()
    if n == 0:
        return float("nan")
    w = np.hstack([weights, np.zeros((k, 1))])
    exp = np.outer(obs.sum(1), obs.sum(0)) / n
    po, pe = (w * obs).sum() / n, (w * exp).sum() / n
    return float((po - pe) / (1 - pe)) if pe != 1 else float("nan")


def aspect_metrics(gold: list[dict], strict: list[dict | None], lenient: list[dict | None],
                   errors: list[str | None], aspects: list[str]) -> dict:
    def flat(preds):
        g, p = [], []
        for gd, pd in zip(gold, preds):
            for a in aspects:
                g.append(gd[a])
                p.append(pd[a] if pd is not None else INVALID)
        return g, p

    def scores(preds):
        g, p = flat(preds)
        return {"kappa": weighted_kappa(g, p), "slot_accuracy": float(np.mean([x == y for x, y in zip(g, p)])),
                "exact_match": float(np.mean([pd is not None and all(pd[a] == gd[a] for a in aspects)
                                              for gd, pd in zip(gold, preds)]))}

    s, l_ = scores(strict), scores(lenient)
    per_aspect = {a: float(np.mean([pd is not None and pd[a] == gd[a] for gd, pd in zip(gold, strict)]))
                  for a in aspects}
    kinds = Counter(e for e in errors if e)
    n = len(gold)
    return {"n": n, **s, **{f"lenient_{k}": v for k, v in l_.items()},
            "per_aspect_accuracy": per_aspect,
            "format_errors": sum(kinds.values()), "format_error_rate": sum(kinds.values()) / n if n else 0.0,
            "error_kinds": dict(sorted(kinds.items()))}


def aspect_majority_baseline(train: list[dict], gold: list[dict], aspects: list[str]) -> dict:
    """Per aspect, always the training set's most frequent label (usually 'unmentioned')."""
    top = {a: Counter(t[a] for t in train).most_common(1)[0][0] for a in aspects}
    m = aspect_metrics(gold, [top] * len(gold), [top] * len(gold), [None] * len(gold), aspects)
    return {"labels": top, "kappa": m["kappa"], "slot_accuracy": m["slot_accuracy"],
            "exact_match": m["exact_match"]}
