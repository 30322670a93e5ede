"""Statistics over the items of an evaluation set, from their per-item sufficient statistics (metrics.SPECS):
bootstrap confidence intervals, paired bootstrap and McNemar tests between designs, the seed-aware interval of a
difference, the equivalence interval of a rank correlation, and the power of a planned comparison.

Every primary metric is a reduction of summed per-item statistics, so a resample is a sum over resampled items.

Seed-aware interval (a mixed-model interval with a random seed effect): a design's score moves with its training
run (the subset drawn, the batch order, the LoRA init), not only with the test items. The variance of a difference
between two designs is taken as var_items + 2 * sigma_seed^2 / S, where var_items is the paired bootstrap's
variance over the test items (an item drawn with its rows of every seed, for both designs), sigma_seed^2 the
study's pooled seed-to-seed variance of one design's score on that set (every design with >= 2 seeds
contributes, ddof 1), and S the number of seeds each arm has. The interval is difference +/- t * sd, with the
Welch-Satterthwaite degrees of freedom of that sum (few seeds estimate the seed term: a normal quantile would
claim more than two seeds know). With no design of >= 2 seeds the seed term is unknown and left out (the report
says so), and the interval is normal. The same variance drives the power
figure (`min_effect`), so a planned study and its finished report agree."""
from __future__ import annotations

import math

import numpy as np
from scipy.stats import binomtest, norm
from scipy.stats import t as t_dist

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


def item_variance(primary: str, a: np.ndarray, b: np.ndarray | None = None, n_boot: int = 1000,
                  seed: int = 0, clusters: np.ndarray | None = None) -> float:
    """The bootstrap variance over items of metric(a), or of metric(a) - metric(b) with the same items resampled
    for both (a and b aligned rows). `clusters`: the item index of each row (rows of several seeds on the same
    items): an item is drawn with all its rows, since the seeds share it."""
    rng = np.random.default_rng(seed)
    rows = len(a)
    ids = np.arange(rows) if clusters is None else np.unique(clusters, return_inverse=True)[1]
    n = int(ids.max()) + 1 if rows else 0
    counts = rng.multinomial(n, np.full(n, 1 / n), size=n_boot).astype(float)[:, ids]  # [b, rows] row weights
    n_rows = counts.sum(1)  # rows in each resample (items need not have a row for every seed)
    vals = _value(primary, counts @ a, n_rows)
    if b is not None:
        vals = vals - _value(primary, counts @ b, n_rows)
    return float(np.nanvar(vals, ddof=1))


def pooled_seed_variance(values_by_group: list[list[float]]) -> tuple[float | None, int]:
    """(sigma_seed^2, degrees of freedom): the within-group variance of per-seed scores, pooled over the groups
    (one design at one train size) with >= 2 seeds; (None, 0) when no group has two."""
    ss, df = 0.0, 0
    for xs in values_by_group:
        xs = [x for x in xs if not math.isnan(x)]
        if len(xs) >= 2:
            ss += float(np.var(xs, ddof=1)) * (len(xs) - 1)
            df += len(xs) - 1
    return (ss / df, df) if df else (None, 0)


def satterthwaite_df(var_items: float, var_seed_term: float, seed_df: int) -> float | None:
    """Welch-Satterthwaite degrees of freedom of var_items + var_seed_term when only the seed term is estimated
    from few values (seed_df degrees of freedom; the item term's are many): None = normal."""
    if not var_seed_term or not seed_df:
        return None
    return (var_items + var_seed_term) ** 2 * seed_df / var_seed_term ** 2


def _crit(q: float, df: float | None) -> float:
    return float(norm.ppf(q) if df is None else t_dist.ppf(q, df))


def normal_interval(observed: float, var: float, alpha: float = 0.05,
                    df: float | None = None) -> tuple[float, float, float]:
    """(lo, hi, two-sided p) of an estimate with variance `var` (the seed-aware interval: var = item variance +
    seed term), on Student's t with `df` degrees of freedom when the variance is estimated from few seeds."""
    if math.isnan(var) or math.isnan(observed):  # no usable resample: nothing is known
        return -math.inf, math.inf, 1.0
    sd = math.sqrt(max(var, 0.0))
    if sd == 0:
        return observed, observed, 1.0 if observed == 0 else 0.0
    z = _crit(1 - alpha / 2, df)
    tail = norm.sf(abs(observed) / sd) if df is None else t_dist.sf(abs(observed) / sd, df)
    return observed - z * sd, observed + z * sd, float(2 * tail)


def min_effect(sd: float, alpha: float = 0.05, power: float = 0.8, df: float | None = None) -> float:
    """The smallest true difference a two-sided test at `alpha` detects with probability `power`, when the
    estimate's standard deviation is `sd` (on t with df degrees of freedom, else normal; the small opposite-side
    tail is ignored)."""
    return float((_crit(1 - alpha / 2, df) + _crit(power, df)) * sd)


def spearman_interval(rho: float, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Confidence interval of Spearman's rho over n points: Fisher's z with the Bonett-Wright (2000) standard
    error sqrt((1 + rho^2 / 2) / (n - 3)). Needs n >= 4."""
    if n < 4:
        return -1.0, 1.0
    r = max(min(rho, 0.999999), -0.999999)
    se = math.sqrt((1 + r * r / 2) / (n - 3))
    z = math.atanh(r)
    q = norm.ppf(1 - alpha / 2)
    return math.tanh(z - q * se), math.tanh(z + q * se)
