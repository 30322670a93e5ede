"""Statistics over the items of an evaluation set, from predictions alone: per-item sufficient statistics for the
family's primary metric, bootstrap confidence intervals, paired bootstrap and McNemar tests between designs.

Every primary metric is a function of summed per-item statistics, so a resample is a sum over resampled items:
accuracy (correct), weighted kappa (the item's slots in a 4x5 confusion matrix), span F1 (tp, predicted, gold),
ROUGE-L (the item's F-measure)."""
from __future__ import annotations

import numpy as np
from scipy.stats import binomtest

from sdelab.metrics.aspects import INVALID, ORDER, PAPER_WEIGHTS
from sdelab.metrics.spans import _count


def item_stats(primary: str, rows: list[dict]) -> np.ndarray:
    """One row of sufficient statistics per prediction row (strict scoring: a format error is wrong)."""
    if primary == "accuracy":
        return np.array([[float(r["error"] is None and r["parsed"] == r["gold"])] for r in rows])
    if primary == "kappa":
        idx = {lab: i for i, lab in enumerate(ORDER)}
        out = np.zeros((len(rows), len(ORDER) * (len(ORDER) + 1)))
        for n, r in enumerate(rows):
            pred = r["parsed"] if r["error"] is None else None
            for aspect, g in r["gold"].items():
                p = pred[aspect] if pred else INVALID
                out[n, idx[g] * (len(ORDER) + 1) + idx.get(p, len(ORDER))] += 1
        return out
    if primary == "f1":
        out = []
        for r in rows:
            pred = r["parsed"] if r["error"] is None else []
            out.append(_count([tuple(x) for x in r["gold"]], [tuple(x) for x in pred or []], soft=False))
        return np.array(out, dtype=float)
    if primary == "rougeL":
        from rouge_score import rouge_scorer
        sc = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
        return np.array([[sc.score(r["gold"], (r["parsed"] if r["error"] is None else "") or "")["rougeL"].fmeasure]
                         for r in rows])
    raise ValueError(f"no item statistics for metric '{primary}'")


def per_item(rows: list[dict], eval_metrics: dict) -> dict:
    """Each evaluation set's item ids and sufficient statistics (strict), from a cell's prediction rows: what the
    report needs without the inputs and outputs (`item_stats.json`, committed where predictions cannot be)."""
    out = {}
    for key, m in eval_metrics.items():
        mine = [r for r in rows if r["eval_set"] == key]
        out[key] = {"primary": m["primary"], "ids": [str(r["id"]) for r in mine],
                    "stats": item_stats(m["primary"], mine).round(6).tolist() if mine else []}
    return out


def _value(primary: str, sums: np.ndarray, n: int) -> np.ndarray:
    """Metric for each row of `sums` ([b, k]) over n items."""
    if primary in ("accuracy", "rougeL"):
        return sums[:, 0] / n
    if primary == "f1":
        tp, npred, ngold = sums[:, 0], sums[:, 1], sums[:, 2]
        p = np.divide(tp, npred, out=np.zeros_like(tp), where=npred > 0)
        r = np.divide(tp, ngold, out=np.zeros_like(tp), where=ngold > 0)
        return np.divide(2 * p * r, p + r, out=np.zeros_like(tp), where=(p + r) > 0)
    k = len(ORDER)
    obs = sums.reshape(-1, k, k + 1)
    tot = obs.sum(axis=(1, 2))
    w = np.hstack([PAPER_WEIGHTS, np.zeros((k, 1))])
    exp = obs.sum(2)[:, :, None] * obs.sum(1)[:, None, :] / tot[:, None, None]
    po = (w * obs).sum(axis=(1, 2)) / tot
    pe = (w * exp).sum(axis=(1, 2)) / tot
    return (po - pe) / (1 - pe)


def value(primary: str, stats: np.ndarray) -> float:
    return float(_value(primary, stats.sum(0, keepdims=True), len(stats))[0])


def bootstrap_ci(primary: str, stats: np.ndarray, n_boot: int = 1000, seed: int = 0,
                 alpha: float = 0.05) -> tuple[float, float]:
    """Percentile bootstrap interval of the metric over items."""
    rng = np.random.default_rng(seed)
    n = len(stats)
    idx = rng.integers(0, n, size=(n_boot, n))
    sums = stats[idx].sum(axis=1)
    vals = _value(primary, sums, n)
    lo, hi = np.nanpercentile(vals, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(lo), float(hi)


def paired_bootstrap(primary: str, a: np.ndarray, b: np.ndarray, n_boot: int = 1000,
                     seed: int = 0) -> tuple[float, float]:
    """(metric(a) - metric(b), two-sided p-value) resampling the same items for both (a and b aligned)."""
    observed, _, _, p = paired_difference(primary, a, b, n_boot, seed)
    return observed, p


def paired_difference(primary: str, a: np.ndarray, b: np.ndarray, n_boot: int = 1000, seed: int = 0,
                      alpha: float = 0.05) -> tuple[float, float, float, float]:
    """metric(a) - metric(b), its percentile-bootstrap interval and two-sided p-value, resampling the same
    items for both (a and b aligned)."""
    assert len(a) == len(b)
    rng = np.random.default_rng(seed)
    n = len(a)
    idx = rng.integers(0, n, size=(n_boot, n))
    diff = _value(primary, a[idx].sum(1), n) - _value(primary, b[idx].sum(1), n)
    observed = value(primary, a) - value(primary, b)
    lo, hi = np.nanpercentile(diff, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    # share of resamples on the other side of zero, doubled (percentile bootstrap test)
    p = 2 * min(np.mean(diff <= 0), np.mean(diff >= 0))
    return observed, float(lo), float(hi), float(min(1.0, p))


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> float:
    """Exact McNemar test (binomial on the discordant pairs): two-sided p-value."""
    a, b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    n01, n10 = int(np.sum(a & ~b)), int(np.sum(~a & b))
    if n01 + n10 == 0:
        return 1.0
    return float(binomtest(n01, n01 + n10, 0.5).pvalue)
