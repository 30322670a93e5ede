"""Every family trains and evaluates end to end on a tiny model; the evaluation matrix carries in-domain /
out-of-domain / cross-task and seen / unseen templates; untuned base-model cells sit in the same matrix."""
import json

import yaml

from sdelab.cli import main

from conftest import write_tiny_task

ROWS = {
    "multi_aspect": [
        {"text": "great pasta but pricey", "food": "1", "price": "-1", "service": "-2"},
        {"text": "rude waiter", "food": "-2", "price": "-2", "service": "-1"},
        {"text": "cheap and tasty", "food": "1", "price": "1", "service": "-2"},
        {"text": "ok food, friendly staff", "food": "0", "price": "-2", "service": "1"},
    ],
    "span_extraction": [
        {"text": "IL-2 activates T cells", "spans": json.dumps([["protein", "IL-2"], ["cell_type", "T cells"]])},
        {"text": "the kappa B site binds p50", "spans": json.dumps([["dna", "kappa B site"], ["protein", "p50"]])},
        {"text": "nothing here", "spans": "[]"},
    ],
    "text_generation": [
        {"text": "Paris is the capital of France.", "answer": "Paris", "output": "What is the capital of France?"},
        {"text": "Water boils at 100 degrees.", "answer": "100 degrees", "output": "At what temperature does water boil?"},
    ],
}
SPECS = {
    "multi_aspect": """labels: {positive: positive, neutral: neutral, negative: negative}
label_map: {"1": positive, "0": neutral, "-1": negative, "-2": unmentioned}
targets: {food: food, price: price, service: service}
inputs: [text]""",
    "span_extraction": """targets: {protein: protein, dna: DNA, cell_type: cell type}
inputs: [text]""",
    "text_generation": """inputs: [text, answer]""",
}


def family_task(tmp_path, family):
    d = tmp_path / family
    d.mkdir()
    for split, mult in (("train", 3), ("test", 1)):
        (d / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS[family] * mult))
    (d / "task.yaml").write_text(f"""name: tiny-{family}
family: {family}
language: en
{SPECS[family]}
templates:
  - {{name: a, instruction: "Do the task for: {{targets}}.", input: "Text: {{text}}"}}
  - {{name: b, instruction: "Task.", input: "{{text}}"}}
splits:
  train: {{path: train.jsonl}}
  test: {{path: test.jsonl}}
""")
    return d / "task.yaml"


def run(tmp_path, model_dir, task_yaml, designs, **extra):
    s = {"name": "fam", "task": str(task_yaml), "model": str(model_dir), "designs": designs, "train_sizes": [6],
         "seeds": [0], "output_dir": str(tmp_path / "runs"),
         "train": {"epochs": 1, "batch_size": 3, "max_length": 256, "precision": "fp32"},
         "eval": {"batch_size": 4, "max_new_tokens": 12}}
    s.update(extra)
    p = tmp_path / "study.yaml"
    p.write_text(yaml.safe_dump(s))
    assert main(["run", str(p)]) == 0
    return [json.loads(m.read_text()) for m in sorted((tmp_path / "runs").glob("*/metrics.json"))]


def test_multi_aspect_family(tmp_path, tiny_model_dir):
    res = run(tmp_path, tiny_model_dir, family_task(tmp_path, "multi_aspect"), ["es-sde", "heuristic+json+ou"])
    m = res[0]["eval"]["test"]
    assert m["primary"] == "kappa" and {"kappa", "slot_accuracy", "exact_match", "per_aspect_accuracy",
                                        "format_errors", "lenient_kappa"} <= set(m)
    assert set(m["majority_baseline"]["labels"]) == {"food", "price", "service"}


def test_span_family(tmp_path, tiny_model_dir):
    res = run(tmp_path, tiny_model_dir, family_task(tmp_path, "span_extraction"), ["es-sde+natural"])
    m = res[0]["eval"]["test"]
    assert m["primary"] == "f1" and {"precision", "recall", "f1", "strict_soft_f1", "lenient_exact_f1"} <= set(m)


def test_generation_family(tmp_path, tiny_model_dir):
    res = run(tmp_path, tiny_model_dir, family_task(tmp_path, "text_generation"), ["es-sde"])
    m = res[0]["eval"]["test"]
    assert m["primary"] == "rougeL" and 0 <= m["rougeL"] <= 1 and "bleu" in m


def test_evaluation_matrix_and_untuned_cells(tmp_path, tiny_model_dir, capsys):
    main_task = write_tiny_task(tmp_path / "a", name="tiny-a")
    other = write_tiny_task(tmp_path / "b", name="tiny-b")
    res = run(tmp_path, tiny_model_dir, main_task, ["es-sde"], untuned=[0, 2],
              eval={"batch_size": 4, "sets": ["test_id", "test_ood", {"set": "test_id", "template": "other"},
                                              f"{other}:test_id"]})
    assert len(res) == 3
    trained = next(r for r in res if r["untuned"] is None)
    ev = trained["eval"]
    assert ev["test_id"]["kind"] == "in_domain" and ev["test_ood"]["kind"] == "out_of_domain"
    assert ev["test_id@other"]["template_seen"] is False and ev["test_id"]["template_seen"] is True
    cross = next(k for k in ev if k.startswith("tiny-b"))
    assert ev[cross]["kind"] == "cross_task"
    untuned = sorted(r["untuned"] for r in res if r["untuned"] is not None)
    assert untuned == [0, 2]
    table = (tmp_path / "runs" / "table.md").read_text()
    assert "untuned k=2" in table and "(cross-task)" in table and "(ID, unseen template)" in table
