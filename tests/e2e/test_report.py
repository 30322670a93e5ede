"""Reports from run folders alone: tables with mean ± sd, CIs, paired tests, ranked summary, plots; shards merge
into the same report; item_stats.json stands in for predictions that cannot be committed."""
import yaml

from sdelab.cli import main


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
    assert html.count("data:image/svg+xml;base64,") >= 4 and "<table>" in html
    # the same study run as two shards into one folder gives the same report
    sharded = tiny_study(tmp_path, tiny_model_dir, tiny_task_yaml, out="sharded")
    assert main(["run", str(sharded), "--shard", "0/2"]) == 0
    assert main(["run", str(sharded), "--shard", "1/2"]) == 0
    assert main(["report", str(tmp_path / "sharded")]) == 0
    def results(out):  # all but the cost table (wall-clock timings differ between runs)
        from conftest import without_cost
        return without_cost((tmp_path / out / "report.md").read_text().replace(out, "X"))
    assert results("whole") == results("sharded")
    for png in ("scores.svg", "forest.svg", "learning_curves.svg", "training_loss.svg"):
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
