"""Statistics over the items of an evaluation set, from their per-item sufficient statistics (metrics.SPECS):
bootstrap confidence intervals, paired bootstrap and McNemar tests between designs.

Every primary metric is a reduction of summed per-item statistics, so a resample is a sum over resampled items."""
from __future__ import annotations

import numpy as np
from scipy.stats import binomtest

from sdelab.metrics import SPECS


def _value(primary: str, sums: np.ndarray, n: int) -> np.ndarray:
    """Metric for each row of `sums` ([b, k]) over n items (the metric's own reduction)."""
    return SPECS[primary].reduce(sums, n)


def value(primary: str, stats: np.ndarray) -> float:
    return SPECS[primary].value(stats)


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
