"""Reports from run folders alone: tables with mean ± sd, CIs, paired tests, ranked summary, plots; shards merge
into the same report; statistics against known values."""
import numpy as np
import pytest
import yaml

from sdelab.cli import main
from sdelab.report import stats as st


def tiny_study(tmp_path, model_dir, task_yaml, out="runs", **extra):
    s = {"name": "rep", "task": str(task_yaml), "model": str(model_dir),
         "designs": ["es-sde", "es-sde+inst-last", "es-sde+num"], "train_sizes": [6, 12], "seeds": [0, 1],
         "output_dir": str(tmp_path / out), "untuned": [0],
         "train": {"epochs": 1, "batch_size": 3, "max_length": 128, "precision": "fp32"},
         "eval": {"batch_size": 4, "max_new_tokens": 3}}
    s.update(extra)
    p = tmp_path / f"{out}.yaml"
    p.write_text(yaml.safe_dump(s))
    return p


def test_report_and_shards_merge(tmp_path, tiny_model_dir, tiny_task_yaml):
    whole = tiny_study(tmp_path, tiny_model_dir, tiny_task_yaml, out="whole")
    assert main(["run", str(whole)]) == 0
    assert main(["report", str(tmp_path / "whole")]) == 0
    md = (tmp_path / "whole" / "report.md").read_text()
    for part in ("Results by design", "against the reference (`es-sde`)", "Ranked summary", "Format errors",
                 "untuned k=0", "majority class", "test_ood (OOD)", "[", "McNemar"):
        assert part in md, part
    assert "| instruction | test_id (ID) |" in md and "| labels |" in md
    html = (tmp_path / "whole" / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 4 and "<table>" in html
    # the same study run as two shards into one folder gives the same report
    sharded = tiny_study(tmp_path, tiny_model_dir, tiny_task_yaml, out="sharded")
    assert main(["run", str(sharded), "--shard", "0/2"]) == 0
    assert main(["run", str(sharded), "--shard", "1/2"]) == 0
    assert main(["report", str(tmp_path / "sharded")]) == 0
    def results(out):  # all but the cost table (wall-clock timings differ between runs)
        from conftest import without_cost
        return without_cost((tmp_path / out / "report.md").read_text().replace(out, "X"))
    assert results("whole") == results("sharded")
    for png in ("scores.png", "learning_curves.png", "training_loss.png"):
        assert (tmp_path / "whole" / "plots" / png).read_bytes() == (tmp_path / "sharded" / "plots" / png).read_bytes()
    # predictions that cannot be committed (research-only data) are not needed: item_stats.json gives the same report
    before = (tmp_path / "whole" / "report.md").read_text()
    for pred in (tmp_path / "whole").glob("*/predictions.jsonl"):
        assert (pred.parent / "item_stats.json").exists()
        pred.unlink()
    assert main(["report", str(tmp_path / "whole")]) == 0
    assert (tmp_path / "whole" / "report.md").read_text() == before
    # a cell with neither still counts in the means, flagged, without an interval
    bare = next((tmp_path / "whole").glob("es-sde__n6__s0__*"))
    (bare / "item_stats.json").unlink()
    assert main(["report", str(tmp_path / "whole")]) == 0
    md = (tmp_path / "whole" / "report.md").read_text()
    assert "1 cell(s) kept neither predictions nor per-item statistics" in md and bare.name in md
    assert "## Cost (mean over seeds)" in md and "## Other metrics of the accuracy sets" in md and "| macro_f1 |" in md
    assert "different precisions" not in md
    # a cell computed in another precision (a study resumed on a machine without native bf16) is named
    manifest = bare / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"precision": "fp32"', '"precision": "bf16"'))
    assert main(["report", str(tmp_path / "whole")]) == 0
    md = (tmp_path / "whole" / "report.md").read_text()
    assert f"Cells ran in different precisions (bf16: {bare.name}; fp32: " in md


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
