"""One definition per primary metric (the lm-evaluation-harness MetricSpec idea): the sufficient statistics of one
item, and the reduction of their sum over items to the metric. A cell's metrics, its item_stats.json and every
bootstrap resample of the report go through the same two functions, so a metric has exactly one definition."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np


@dataclass(frozen=True)
class MetricSpec:
    name: str
    per_item: Callable[[Any, Any], list[float]]  # (gold, strict prediction: None after a format error) -> stats
    reduce: Callable[[np.ndarray, int], np.ndarray]  # (summed stats [b, k], number of items) -> metric [b]

    def stats(self, gold: list, preds: list) -> np.ndarray:
        """[items, k] statistics of aligned gold and strict predictions."""
        return np.array([self.per_item(g, p) for g, p in zip(gold, preds)], dtype=float)

    def value(self, stats: np.ndarray) -> float:
        """The metric over the items whose statistics are the rows of `stats` (NaN over no item)."""
        if len(stats) == 0:
            return float("nan")
        return float(self.reduce(stats.sum(0, keepdims=True), len(stats))[0])

    def score(self, gold: list, preds: list) -> float:  # the metric of aligned gold and strict predictions
        return self.value(self.stats(gold, preds))


def mean_of_items(sums: np.ndarray, n: int) -> np.ndarray:
    """Metrics that are a mean over items of the item's first statistic (accuracy, ROUGE-L)."""
    return sums[:, 0] / n
