"""A whole study on a tiny random model: train, evaluate, run folder contents, resume."""
import json
from datetime import datetime

import pytest
import yaml

from sdelab.cli import main
from sdelab.config import load_study
from sdelab.study.grid import expand, expand_all, study_designs
from sdelab.tasks import get_task


def write_study(tmp_path, model_dir, task_yaml, **extra):
    study = {"name": "tiny", "task": str(task_yaml), "model": str(model_dir),
             "designs": ["inst-first", "inst-last+mi"], "train_sizes": [12], "seeds": [0],
             "train": {"epochs": 2, "batch_size": 4, "lr": 1e-3, "max_length": 128, "precision": "fp32"},
             "eval": {"max_new_tokens": 4, "batch_size": 4},
             "output_dir": str(tmp_path / "runs")}
    study.update(extra)
    p = tmp_path / "study.yaml"
    p.write_text(yaml.safe_dump(study))
    return p


def test_study_end_to_end_and_resume(tmp_path, tiny_model_dir, tiny_task_yaml, capsys):
    p = write_study(tmp_path, tiny_model_dir, tiny_task_yaml)
    assert main(["run", str(p)]) == 0
    runs = tmp_path / "runs"
    cells = sorted(d for d in runs.iterdir() if d.is_dir() and not d.name.startswith("."))
    assert len(cells) == 2 and not any(d.name.endswith(".partial") for d in cells)
    for d in cells:
        names = {f.name for f in d.iterdir()}
        assert {"config.yaml", "manifest.json", "predictions.jsonl", "metrics.json", "adapter",
                "train_log.jsonl"} <= names
        assert (d / "adapter" / "adapter_config.json").exists()
        metrics = json.loads((d / "metrics.json").read_text())
        assert set(metrics["eval"]) == {"test_id", "test_ood"}
        m = metrics["eval"]["test_id"]
        assert m["n"] == 4 and 0 <= m["accuracy"] <= 1 and m["format_errors"] + sum(
            v for k, v in m["pred_distribution"].items() if k != "<error>") == 4
        preds = [json.loads(line) for line in (d / "predictions.jsonl").read_text().splitlines()]
        assert len(preds) == 7 and {"input", "raw", "parsed", "gold", "error", "eval_set"} <= set(preds[0])
        man = json.loads((d / "manifest.json").read_text())
        assert man["seed"] == 0 and man["train"]["examples"] == 12 and man["train"]["tokens"] > 0
        assert man["versions"]["torch"] and all(len(h) == 64 for h in man["data_files"].values())
        curve = [json.loads(x) for x in (d / "train_log.jsonl").read_text().splitlines()]
        assert curve[-1]["step"] == 6  # 12 examples / batch 4 * 2 epochs
    assert (runs / "table.md").exists() and "majority class" in (runs / "table.md").read_text()
    capsys.readouterr()
    # a second run skips both finished cells
    assert main(["run", str(p)]) == 0
    assert capsys.readouterr().out.count("finished earlier, skipped") == 2


def test_training_lowers_the_loss(tmp_path, tiny_model_dir, tiny_task_yaml):
    p = write_study(tmp_path, tiny_model_dir, tiny_task_yaml, designs=["inst-first"],
                    train={"epochs": 8, "batch_size": 4, "lr": 1e-2, "max_length": 128, "precision": "fp32"})
    assert main(["run", str(p)]) == 0
    d = next((tmp_path / "runs").glob("inst-first*"))
    curve = [json.loads(x)["loss"] for x in (d / "train_log.jsonl").read_text().splitlines()]
    assert curve[-1] < 0.7 * curve[0]


def test_inputs_cut_to_fit_max_length_are_counted_and_reported(tmp_path, tiny_model_dir, tiny_task_yaml):
    # a silent cut used to hide that a cell scored shortened inputs: now metrics.json counts the evaluation
    # prompts, the manifest the training samples, and the report lists the cells
    p = write_study(tmp_path, tiny_model_dir, tiny_task_yaml, designs=["inst-first"],
                    train={"epochs": 1, "batch_size": 4, "max_length": 40, "precision": "fp32"})
    assert main(["run", str(p)]) == 0
    d = next((tmp_path / "runs").glob("inst-first*"))
    cut = {k: e["prompts_truncated"] for k, e in json.loads((d / "metrics.json").read_text())["eval"].items()}
    trained = json.loads((d / "manifest.json").read_text())["train"]["truncated_samples"]
    assert sum(cut.values()) > 0 and trained > 0
    assert main(["report", str(tmp_path / "runs")]) == 0
    report = (tmp_path / "runs" / "report.md").read_text()
    assert "## Inputs cut to fit max_length" in report
    assert f"{trained} of 12 training samples; {sum(cut.values())} of 7 evaluation prompts" in report
    # with room for every input, nothing is cut and the report says nothing about it
    p = write_study(tmp_path, tiny_model_dir, tiny_task_yaml, designs=["inst-first"], output_dir=str(tmp_path / "b"))
    assert main(["run", str(p)]) == 0
    d = next((tmp_path / "b").glob("inst-first*"))
    assert main(["report", str(tmp_path / "b")]) == 0
    assert all(e["prompts_truncated"] == 0 for e in json.loads((d / "metrics.json").read_text())["eval"].values())
    assert "Inputs cut" not in (tmp_path / "b" / "report.md").read_text()


def test_a_changed_study_run_again_does_not_count_its_old_cells_as_seeds(tmp_path, tiny_model_dir, tiny_task_yaml):
    p = write_study(tmp_path, tiny_model_dir, tiny_task_yaml, designs=["inst-first"])
    assert main(["run", str(p)]) == 0
    p = write_study(tmp_path, tiny_model_dir, tiny_task_yaml, designs=["inst-first"],
                    train={"epochs": 2, "batch_size": 4, "lr": 5e-4, "max_length": 128, "precision": "fp32"})
    assert main(["run", str(p)]) == 0  # another lr: another cell id, beside the old folder
    runs = tmp_path / "runs"
    first, second = sorted((d for d in runs.glob("inst-first*")),
                           key=lambda d: datetime.fromisoformat(json.loads((d / "manifest.json").read_text())
                                                                ["finished_at"]))
    assert main(["report", str(runs)]) == 0
    md = (runs / "report.md").read_text()
    assert "| inst-first | 12 | 1 |" in md  # one seed, not two
    assert f"| {first.name} | {second.name} | train |" in md


def test_interrupted_cell_is_redone(tmp_path, tiny_model_dir, tiny_task_yaml):
    p = write_study(tmp_path, tiny_model_dir, tiny_task_yaml, designs=["inst-first"])
    study, _ = load_study(p)
    cell = expand_all(study, p.parent)[0].cells[0]  # with its inputs (data and weights hashes), as `run` sees it
    stale = tmp_path / "runs" / (cell.folder_name + ".partial")
    stale.mkdir(parents=True)
    (stale / "config.yaml").write_text("half-written")
    assert main(["run", str(p)]) == 0
    assert not stale.exists() and (tmp_path / "runs" / cell.folder_name / "metrics.json").exists()


def test_dry_run_lists_cells(tmp_path, tiny_model_dir, tiny_task_yaml, capsys):
    p = write_study(tmp_path, tiny_model_dir, tiny_task_yaml, seeds=[0, 1], train_sizes=[6, 12])
    assert main(["run", str(p), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "8 cells" in out and "training tokens to go" in out
    n6 = [int(line.split()[-3].replace(",", "")) for line in out.splitlines() if "__n6__" in line]
    n12 = [int(line.split()[-3].replace(",", "")) for line in out.splitlines() if "__n12__" in line]
    assert len(n6) == 4 and all(b > a for a, b in zip(sorted(n6), sorted(n12)))


def test_cell_ids_are_stable_and_distinct(tmp_path, tiny_model_dir, tiny_task_yaml):
    p = write_study(tmp_path, tiny_model_dir, tiny_task_yaml, seeds=[0, 1])
    study = load_study(p)[0]
    designs = study_designs(study, get_task(study.task))
    a = [c.id for c in expand(study, designs)]
    b = [c.id for c in expand(load_study(p)[0], designs)]
    assert a == b and len(set(a)) == 4


@pytest.mark.parametrize("method", ["score"])
def test_label_scoring_study(tmp_path, tiny_model_dir, tiny_task_yaml, method):
    p = write_study(tmp_path, tiny_model_dir, tiny_task_yaml, designs=["inst-first"],
                    eval={"method": method, "batch_size": 4})
    assert main(["run", str(p)]) == 0
    d = next((tmp_path / "runs").glob("inst-first*"))
    m = json.loads((d / "metrics.json").read_text())["eval"]["test_id"]
    assert m["format_errors"] == 0
    pred = json.loads((d / "predictions.jsonl").read_text().splitlines()[0])
    assert set(pred["scores"]) == {"positive", "negative", "neutral"}


def test_sweeps_over_tasks_models_and_hyperparameters(tmp_path, tiny_model_dir, tiny_task_yaml, capsys):
    from conftest import write_tiny_task
    other = write_tiny_task(tmp_path / "other", name="tiny-other")
    p = write_study(tmp_path, tiny_model_dir, tiny_task_yaml, designs=["inst-first"],
                    task=[str(tiny_task_yaml), str(other)], sweep={"lr": [1e-3, 2e-3], "lora.r": [4]})
    assert main(["run", str(p), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "4 cells" in out and "tiny-other__lora.r=4__lr=0.002__inst-first" in out and "tiny-reviews__" in out
    assert main(["run", str(p), "--dry-run", "--shard", "1/2"]) == 0
    assert "2 cells" in capsys.readouterr().out
    assert main(["run", str(p), "--dry-run", "--no-cost", "--only", "tiny-other__*lr=0.001*"]) == 0
    out = capsys.readouterr().out
    assert "1 cells" in out and "tiny-other__lora.r=4__lr=0.001__inst-first" in out
    assert main(["run", str(p), "--dry-run", "--only", "nothing*"]) == 2
    assert "no cell's folder name matches" in capsys.readouterr().err
    bad = write_study(tmp_path, tiny_model_dir, tiny_task_yaml, sweep={"learning_rate": [1e-3]})
    assert main(["run", str(bad)]) == 2
    assert "cannot sweep 'learning_rate'" in capsys.readouterr().err


def test_tensorboard_tracking(tmp_path, tiny_model_dir, tiny_task_yaml):
    pytest.importorskip("tensorboard")
    p = write_study(tmp_path, tiny_model_dir, tiny_task_yaml, designs=["inst-first"],
                    train={"epochs": 2, "batch_size": 4, "max_length": 128, "precision": "fp32",
                           "tracking": ["tensorboard"]})
    assert main(["run", str(p)]) == 0
    d = next((tmp_path / "runs").glob("inst-first*"))
    assert list((d / "tracking").rglob("events.out.tfevents.*"))


def test_reuse_copies_identical_cells_from_another_study(tmp_path, tiny_model_dir, tiny_task_yaml, capsys):
    """`--reuse RUN_DIR` takes finished cells with the same full config from another study; others are trained."""
    first = write_study(tmp_path, tiny_model_dir, tiny_task_yaml, designs=["inst-first"])
    assert main(["run", str(first)]) == 0
    (tmp_path / "a").mkdir()
    second = write_study(tmp_path / "a", tiny_model_dir, tiny_task_yaml, name="bigger",
                         designs=["inst-first", "inst-last"], output_dir=str(tmp_path / "runs2"),
                         rationales={"teacher": str(tiny_model_dir)})  # no non-CoT cell depends on it
    capsys.readouterr()
    assert main(["run", str(second), "--reuse", str(tmp_path / "runs")]) == 0
    out = capsys.readouterr().out
    assert out.count("reused from") == 1 and "[2/2]" in out
    old = next((tmp_path / "runs").glob("inst-first__*"))
    new = tmp_path / "runs2" / old.name
    assert (new / "reused_from.txt").read_text().strip() == str(old.resolve())
    assert (new / "metrics.json").read_text() == (old / "metrics.json").read_text()
    assert len(list((tmp_path / "runs2").glob("inst-last__*/metrics.json"))) == 1


def test_run_order_compares_every_design_before_repeating_seeds(tmp_path, tiny_model_dir, tiny_task_yaml):
    from sdelab.study.grid import run_order
    p = write_study(tmp_path, tiny_model_dir, tiny_task_yaml, seeds=[1, 0], train_sizes=[12, 6], untuned=[0])
    study = load_study(p)[0]
    cells = expand(study, study_designs(study, get_task(study.task)))
    got = [(c.untuned, c.seed, c.train_size, c.design.name) for c in run_order(study, cells)]
    assert got[:2] == [(0, 1, 0, "inst-first"), (0, 1, 0, "inst-last+mi")]
    assert got[2:] == [(None, s, n, d) for s in (1, 0) for n in (6, 12) for d in ("inst-first", "inst-last+mi")]


def test_untuned_cells_use_k_demonstrations_and_are_not_repeated(tmp_path, tiny_model_dir, tiny_task_yaml):
    # FT and FTICL render the same zero-shot prompts: one untuned k=0 cell; k=2 differs (the FTICL design's own
    # fixed demonstrations vs the plain design's default selection): two cells
    p = write_study(tmp_path, tiny_model_dir, tiny_task_yaml, designs=["es-sde", "es-sde+k2+random"],
                    untuned=[0, 2])
    study = load_study(p)[0]
    untuned = [c for c in expand(study, study_designs(study, get_task(study.task))) if c.untuned is not None]
    assert [(c.design.name, c.untuned, c.design.demos) for c in untuned] == [
        ("es-sde", 0, 0), ("es-sde", 2, 2), ("es-sde+k2+random", 2, 2)]
    assert untuned[0].design.demo_selection == "fixed" and untuned[2].design.demo_selection == "random"
    # the prompts are cut to train.max_length: a longer one is another untuned cell (as it is for a trained one)
    longer = study.model_copy(update={"train": study.train.model_copy(update={"max_length": 2048})})
    again = [c for c in expand(longer, study_designs(study, get_task(study.task))) if c.untuned is not None]
    assert not {c.id for c in again} & {c.id for c in untuned}
