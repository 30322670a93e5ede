"""Design diagnostics: perplexities against a direct computation on a tiny model; `sdelab diagnose` writes them
with in-context scores, and the report sets them beside the fine-tuned scores with rank correlations."""
import json
import math
from pathlib import Path

import pytest
import torch
import yaml

from sdelab.cli import main
from sdelab.design import get_design, render
from sdelab.infer.perplexity import sample_nll
from sdelab.models.tokenize import make_formatter, response_ids
from sdelab.tasks import load_task_file

from conftest import build_model


def test_perplexities_match_a_direct_computation(tiny_tokenizer, tiny_task_yaml):
    lm = build_model(tiny_tokenizer, seed=5).eval()
    task = load_task_file(tiny_task_yaml)
    f = make_formatter(tiny_tokenizer, "chat", 256)
    ex = task.load("train", Path("."))[:3]
    d = get_design("es-sde")
    samples = [render(task, d, e) for e in ex]
    got = sample_nll(lm, f, samples, tiny_tokenizer.pad_token_id, batch_size=2)
    for s, (p_nll, r_nll) in zip(samples, got):
        pre = f.pre
        prompt_ids = [t for seg in s.prompt for t in f.ids(seg.text)]
        resp = response_ids(f, s.response.text)
        ids = pre + prompt_ids + f.gen + resp
        with torch.no_grad():
            lp = torch.log_softmax(lm(torch.tensor([ids])).logits[0].float(), -1)
        nll = [-float(lp[i - 1, ids[i]]) for i in range(1, len(ids))]  # nll[i-1] is token i
        p0 = len(pre)
        direct_prompt = sum(nll[i - 1] for i in range(p0, p0 + len(prompt_ids))) / len(prompt_ids)
        r0 = len(ids) - len(resp)
        direct_resp = sum(nll[i - 1] for i in range(r0, len(ids))) / len(resp)
        assert math.isclose(p_nll, direct_prompt, rel_tol=1e-4) and math.isclose(r_nll, direct_resp, rel_tol=1e-4)


def test_diagnose_and_report(tmp_path, tiny_model_dir, tiny_task_yaml, capsys):
    s = {"name": "diag", "task": str(tiny_task_yaml), "model": str(tiny_model_dir),
         "designs": ["es-sde", "es-sde+inst-last", "es-sde+no-inst"], "train_sizes": [12], "seeds": [0],
         "untuned": [0, 2], "output_dir": str(tmp_path / "runs"),
         "train": {"epochs": 1, "batch_size": 4, "max_length": 160, "precision": "fp32"},
         "eval": {"batch_size": 4, "max_new_tokens": 3}}
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(s))
    assert main(["diagnose", str(p), "-n", "8"]) == 0
    diag = json.loads((tmp_path / "runs" / "diagnostics.json").read_text())
    assert set(diag["designs"]) == {"es-sde", "es-sde+inst-last", "es-sde+no-inst"}
    r = diag["designs"]["es-sde"]
    assert r["prompt_ppl"] > 1 and r["output_ppl"] > 1 and set(r["icl"]) == {"0", "2"}
    assert set(r["icl"]["0"]) == {"test_id", "test_ood"}
    assert all(0 <= e <= 1 for k in ("0", "2") for e in r["icl_format_errors"][k].values())
    assert set(r["icl_format_errors"]["2"]) == {"test_id", "test_ood"}
    assert diag["designs"]["es-sde+no-inst"]["prompt_ppl"] != r["prompt_ppl"]
    assert not (tmp_path / "runs" / "diagnostics.partial.json").exists()
    assert main(["run", str(p)]) == 0
    assert main(["report", str(tmp_path / "runs")]) == 0
    md = (tmp_path / "runs" / "report.md").read_text()
    assert "Design diagnostics" in md and "Spearman" in md and "| -prompt PPL |" in md
    assert "% format errors) |" in md  # beside each in-context score
    # the study file names its run folder too; --publish copies what docs/results holds
    pub = tmp_path / "docs" / "diag"
    assert main(["report", str(p), "--publish", str(pub)]) == 0
    assert (pub / "report.md").read_text() == md and (pub / "diagnostics.json").exists()
    assert {f.name for f in (pub / "plots").iterdir()} == {f.name for f in (tmp_path / "runs" / "plots").iterdir()}


def test_diagnose_resumes_at_the_next_design_and_caps_the_in_context_items(tmp_path, tiny_model_dir, tiny_task_yaml,
                                                                          capsys):
    s = {"name": "diag", "task": str(tiny_task_yaml), "model": str(tiny_model_dir),
         "designs": ["es-sde", "es-sde+inst-last"], "train_sizes": [12], "seeds": [0], "untuned": [0],
         "output_dir": str(tmp_path / "runs"), "train": {"precision": "fp32"},
         "eval": {"batch_size": 4, "max_new_tokens": 3}}
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(s))
    runs = tmp_path / "runs"
    assert main(["diagnose", str(p), "-n", "4", "--size", "3"]) == 0
    full = json.loads((runs / "diagnostics.json").read_text())
    assert set(full["icl_examples"].values()) == {3}
    # a run stopped after its first design left only that design in the partial file (marked to tell it apart)
    partial = {**full, "designs": {"es-sde": {**full["designs"]["es-sde"], "prompt_ppl": -1.0}}}
    (runs / "diagnostics.json").unlink()
    (runs / "diagnostics.partial.json").write_text(json.dumps(partial))
    capsys.readouterr()
    assert main(["diagnose", str(p), "-n", "4", "--size", "3"]) == 0
    assert "es-sde: measured earlier, kept" in capsys.readouterr().out
    resumed = json.loads((runs / "diagnostics.json").read_text())
    assert resumed["designs"]["es-sde"]["prompt_ppl"] == -1.0
    assert resumed["designs"]["es-sde+inst-last"] == full["designs"]["es-sde+inst-last"]
    assert not (runs / "diagnostics.partial.json").exists()
    # other settings: the partial file is not used
    (runs / "diagnostics.partial.json").write_text(json.dumps(partial))
    assert main(["diagnose", str(p), "-n", "4", "--size", "2"]) == 0
    assert json.loads((runs / "diagnostics.json").read_text())["designs"]["es-sde"]["prompt_ppl"] > 1
    with pytest.raises(SystemExit) as e:
        main(["diagnose", str(p), "--size", "0"])
    assert e.value.code == 2 and "at least 1, got '0'" in capsys.readouterr().err


def test_a_cot_design_shows_its_demonstrations_rationales(tmp_path, tiny_model_dir, tiny_task_yaml):
    # rationales from a teacher, so the examples carry none until they are attached
    s = {"name": "diag", "task": str(tiny_task_yaml), "model": str(tiny_model_dir), "designs": ["es-sde+cot"],
         "rationales": {"teacher": str(tiny_model_dir), "max_new_tokens": 8}, "train_sizes": [12], "seeds": [0],
         "output_dir": str(tmp_path / "runs"), "train": {"precision": "fp32", "max_length": 128},
         "eval": {"batch_size": 4, "max_new_tokens": 3}}
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(s))
    # k=1: the demonstration is rendered with its rationale (it used to fail: the pool had none attached), and
    # the prompt may be up to twice the training max_length (it used to fail: "does not fit max_length")
    assert main(["diagnose", str(p), "-n", "4", "-k", "0", "1", "--size", "2"]) == 0
    diag = json.loads((tmp_path / "runs" / "diagnostics.json").read_text())
    assert set(diag["designs"]["es-sde+cot"]["icl"]) == {"0", "1"}


def test_a_cot_design_on_another_tasks_set_gets_rationales_for_its_demonstrations(tmp_path, tiny_model_dir,
                                                                                   tiny_task_yaml):
    """The 1-shot prompt of a CoT design on another task's set draws its demonstration from that task's training
    split: it used to be cached without rationales by a design listed before (MissingRationale after hours)."""
    from conftest import write_tiny_task
    other = write_tiny_task(tmp_path / "b", name="tiny-b")
    s = {"name": "diag", "task": str(tiny_task_yaml), "model": str(tiny_model_dir), "designs": ["es-sde", "es-sde+cot"],
         "rationales": {"teacher": str(tiny_model_dir), "max_new_tokens": 8}, "train_sizes": [12], "seeds": [0],
         "output_dir": str(tmp_path / "runs"), "train": {"precision": "fp32", "max_length": 128},
         "eval": {"batch_size": 4, "max_new_tokens": 3, "sets": ["test_id", f"{other}:test_id"]}}
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(s))
    assert main(["diagnose", str(p), "-n", "4", "-k", "1", "--size", "2"]) == 0
    diag = json.loads((tmp_path / "runs" / "diagnostics.json").read_text())
    assert len(diag["designs"]["es-sde+cot"]["icl"]["1"]) == 2
