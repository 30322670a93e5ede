"""The report's statistics against known values: bootstrap intervals, paired tests, per-item statistics that
reduce to the cell's metric, the majority-class rows (the whole-study report runs: tests/e2e/test_report.py)."""
import numpy as np
import pytest

from sdelab.report import stats as st


def test_bootstrap_ci_covers_accuracy():
    stats = np.array([[1.0]] * 70 + [[0.0]] * 30)
    lo, hi = st.bootstrap_ci("accuracy", stats, n_boot=2000)
    assert lo < 0.7 < hi and 0.58 < lo and hi < 0.8
    assert st.value("accuracy", stats) == pytest.approx(0.7)


def test_paired_bootstrap_and_mcnemar_known_values():
    a = np.array([[1.0]] * 60 + [[0.0]] * 40)
    assert st.paired_bootstrap("accuracy", a, a)[0] == 0.0
    b = np.array([[1.0]] * 40 + [[0.0]] * 60)
    diff, p = st.paired_bootstrap("accuracy", a, b, n_boot=2000)
    assert diff == pytest.approx(0.2) and p < 0.01
    # McNemar: 10 discordant pairs all one way -> exact two-sided p = 2 * 0.5**10
    ca = np.array([1] * 10 + [1] * 5 + [0] * 5)
    cb = np.array([0] * 10 + [1] * 5 + [0] * 5)
    assert st.mcnemar(ca, cb) == pytest.approx(2 * 0.5 ** 10)
    assert st.mcnemar(ca, ca) == 1.0


def test_item_stats_of_a_cell_reduce_to_its_metrics():
    """item_stats.json (from the prediction rows, strict) and metrics.json (from metrics.score) are one metric
    definition: the report's statistics reduce to the value the cell wrote, format errors included."""
    from sdelab.metrics import SPECS, aspect_metrics, span_metrics
    from sdelab.results import PredictionRow, item_stats
    rows = [PredictionRow("s", "0", {}, "", {"f": "positive", "p": "negative"}, {"f": "positive", "p": "negative"},
                          {"f": "positive", "p": "unmentioned"}, None),
            PredictionRow("s", "1", {}, "", None, {"f": "negative", "p": "neutral"}, {"f": "negative", "p": "neutral"},
                          "unparsable"),
            PredictionRow("s", "2", {}, "", {"f": "neutral", "p": "positive"}, {"f": "neutral", "p": "positive"},
                          {"f": "neutral", "p": "positive"}, None)]
    m = aspect_metrics([r.gold for r in rows], [r.parsed for r in rows], [r.lenient for r in rows],
                       [r.error for r in rows], ["f", "p"])
    got = item_stats(rows, {"s": {"primary": "kappa"}})["s"]
    assert SPECS["kappa"].value(np.array(got.stats)) == pytest.approx(m["kappa"]) and got.ids == ["0", "1", "2"]
    spans = [PredictionRow("s", "0", {}, "", [["protein", "IL-2"], ["dna", "x"]], [], [["protein", "IL-2"]], None),
             PredictionRow("s", "1", {}, "", [], [], [["dna", "y"]], None)]
    f1 = span_metrics([[tuple(x) for x in r.gold] for r in spans], [[tuple(x) for x in r.parsed] for r in spans],
                      [None, None], [None, None])["f1"]
    got = item_stats(spans, {"s": {"primary": "f1"}})["s"]
    assert SPECS["f1"].value(np.array(got.stats)) == pytest.approx(f1) == pytest.approx(0.5)  # tp 1 of 2 predicted, 2 gold


def test_majority_row_per_train_size_when_the_subsets_disagree():
    from pathlib import Path

    from sdelab.report.table import summarize
    from sdelab.results import CellRecord, SetMetrics

    def cell(size, label, acc):
        base = {"label": label, "accuracy": acc}
        m = SetMetrics("accuracy", "in_domain", True, 0.0, 0, base, 10, {"accuracy": 0.7, "majority_baseline": base})
        return CellRecord(Path("x"), "id", "", "es-sde", "generative", size, 0, None, {}, {"test": m}, None, {})
    _, rows = summarize([cell(250, "different", 0.46), cell(1000, "same", 0.54)])
    assert [r[:2] + [r[3]] for r in rows if r[0] == "majority class"] == [["majority class", "250", "0.460"],
                                                                           ["majority class", "1000", "0.540"]]
    _, rows = summarize([cell(250, "same", 0.54), cell(1000, "same", 0.54)])
    assert [r[:2] + [r[3]] for r in rows if r[0] == "majority class"] == [["majority class", "-", "0.540"]]
