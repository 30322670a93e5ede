"""Multi-aspect sentiment metrics, as the Sample Design Engineering paper scored them: weighted Cohen's kappa over
the four labels pooled across aspects, slot accuracy, per-aspect accuracy, exact match, format errors."""
from __future__ import annotations

from collections import Counter

import numpy as np

from sdelab.metrics.spec import MetricSpec
from sdelab.tasks.task import UNMENTIONED

ORDER = ("positive", "neutral", "negative", UNMENTIONED)
# rows: gold, columns: prediction, in ORDER (the paper's weight matrix; partial credit for near misses)
PAPER_WEIGHTS = np.array([[1, .5, 0, .5],
                          [.67, 1, .67, .67],
                          [0, .5, 1, .5],
                          [.5, .67, .5, 1]])
INVALID = "<invalid>"  # a slot of an example whose output had a format error, under strict scoring


def kappa_from_confusion(obs: np.ndarray, weights=PAPER_WEIGHTS) -> np.ndarray:
    """Cohen's kappa with agreement weights W (1 = full agreement) of each confusion matrix in `obs` ([b, k, k + 1]:
    rows gold, columns prediction, the last column predictions outside the labels, weight 0 against every gold
    label): (p_o - p_e) / (1 - p_e), where p_o = sum W*O / N and p_e = sum W*E / N with E the outer product of the
    marginals / N. NaN where there are no items or p_e = 1."""
    k = obs.shape[1]
    w = np.hstack([weights, np.zeros((k, 1))])
    tot = obs.sum(axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        exp = obs.sum(2)[:, :, None] * obs.sum(1)[:, None, :] / tot[:, None, None]
        po = (w * obs).sum(axis=(1, 2)) / tot
        pe = (w * exp).sum(axis=(1, 2)) / tot
        return np.where(pe != 1, (po - pe) / (1 - pe), np.nan)


_INDEX = {lab: i for i, lab in enumerate(ORDER)}


def _slots(gold: dict, pred: dict | None) -> list[float]:
    """The item's aspects as counts in the flattened gold x prediction confusion matrix (strict: no prediction,
    every slot invalid)."""
    out = [0.0] * (len(ORDER) * (len(ORDER) + 1))
    for aspect, g in gold.items():
        p = pred[aspect] if pred is not None else INVALID
        out[_INDEX[g] * (len(ORDER) + 1) + _INDEX.get(p, len(ORDER))] += 1
    return out


KAPPA = MetricSpec("kappa", _slots,
                   lambda sums, n: kappa_from_confusion(sums.reshape(-1, len(ORDER), len(ORDER) + 1)))


def weighted_kappa(gold: list[str], pred: list[str], labels=ORDER, weights=PAPER_WEIGHTS) -> float:
    """Weighted kappa of aligned label lists (a prediction outside `labels` is a format error)."""
    k = len(labels)
    idx = {lab: i for i, lab in enumerate(labels)}
    obs = np.zeros((k, k + 1))
    for g, p in zip(gold, pred):
        obs[idx[g], idx.get(p, k)] += 1
    return float(kappa_from_confusion(obs[None], weights)[0])


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
        return {"kappa": KAPPA.score(gold, preds), "slot_accuracy": float(np.mean([x == y for x, y in zip(g, p)])),
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
