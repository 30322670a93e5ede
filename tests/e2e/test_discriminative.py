"""The discriminative paradigm: a classification head on the LLM's last non-pad token (LoRA on the backbone, the
head trained in full), on classification and multi-aspect tasks, side by side with generative in one study; and
an encoder (BERT-like) backbone in the same slot."""
import json

import pytest
import torch
import yaml

from sdelab.cli import main

from conftest import CORPUS
from test_families import family_task


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory):
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast
    d = tmp_path_factory.mktemp("tiny_bert")
    words = sorted({w.strip(".,:;!?") for line in CORPUS for w in line.lower().split()} |
                   {"great", "battery", "broke", "fine", "love", "screen", "food", "room", "cold", "waiter"})
    (d / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    tok = BertTokenizerFast(vocab_file=str(d / "vocab.txt"))
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=64, max_position_embeddings=256)
    BertForSequenceClassification(cfg).save_pretrained(d)
    tok.save_pretrained(d)
    return d


def study(tmp_path, model_dir, task_yaml, **extra):
    s = {"name": "disc", "task": str(task_yaml), "model": str(model_dir), "designs": ["es-sde"],
         "train_sizes": [12], "seeds": [0], "modeling": "discriminative", "output_dir": str(tmp_path / "runs"),
         "train": {"epochs": 2, "batch_size": 4, "lr": 1e-3, "max_length": 128, "precision": "fp32"},
         "eval": {"batch_size": 4}}
    s.update(extra)
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(s))
    return p


def cells(tmp_path):
    return {d.name: json.loads((d / "metrics.json").read_text()) for d in (tmp_path / "runs").iterdir()
            if (d / "metrics.json").exists()}


def test_llm_with_head_on_a_classification_task(tmp_path, tiny_model_dir, tiny_task_yaml):
    assert main(["run", str(study(tmp_path, tiny_model_dir, tiny_task_yaml))]) == 0
    (m,) = cells(tmp_path).values()
    assert m["modeling"] == "discriminative"
    ev = m["eval"]["test_id"]
    assert ev["format_errors"] == 0 and ev["n"] == 4 and 0 <= ev["accuracy"] <= 1
    d = next((tmp_path / "runs").glob("es-sde*"))
    cfg = json.loads((d / "adapter" / "adapter_config.json").read_text())
    assert cfg["task_type"] == "SEQ_CLS" and "score" in (cfg.get("modules_to_save") or [])
    row = json.loads((d / "predictions.jsonl").read_text().splitlines()[0])
    assert set(row["scores"]) == {"positive", "negative", "neutral"}


def test_pad_differs_from_eos_for_the_head(tiny_tokenizer):
    from sdelab.models.load import classification_pad_id
    assert classification_pad_id(tiny_tokenizer) != tiny_tokenizer.eos_token_id


def test_generative_and_discriminative_side_by_side(tmp_path, tiny_model_dir, tiny_task_yaml):
    p = study(tmp_path, tiny_model_dir, tiny_task_yaml, modeling=["generative", "discriminative"],
              train_sizes=[6, 12], untuned=[0])
    assert main(["run", str(p)]) == 0
    res = cells(tmp_path)
    kinds = sorted((m.get("modeling", "generative"), m["train_size"]) for m in res.values())
    assert kinds == [("discriminative", 6), ("discriminative", 12), ("generative", 6), ("generative", 12),
                     ("untuned", 0)]
    assert all(n.startswith(("gen__", "cls__")) for n in res)
    assert main(["report", str(tmp_path / "runs")]) == 0
    md = (tmp_path / "runs" / "report.md").read_text()
    assert "| cls es-sde | 12 |" in md and "| gen es-sde | 12 |" in md
    # the reference is a whole label (`cls es-sde`): each generative cell is compared with the head of its size
    # (it used to print "-": the label was looked up as "gen cls es-sde")
    sig = md.split("against the reference (`cls es-sde`)")[1].split("## ")[0]
    rows = [r for r in sig.splitlines() if r.startswith("| gen es-sde |")]
    assert len(rows) == 3 and all("(p=" in r for r in rows)  # sizes 6 and 12, and the untuned model
    # and the ranked summary names the factor (it said no design differed: the options were looked up under the
    # bare reference name, and the paradigm was not a factor)
    summary = md.split("## Ranked summary")[1].split("## ")[0]
    assert "| modeling | test_id (ID) |" in summary and "(train size 12;" in summary


def test_ranked_summary_within_each_paradigm(tmp_path, tiny_model_dir, tiny_task_yaml):
    # a bare reference (`es-sde`) is each variant's own: the one-option sweep is summarised for gen and for cls
    p = study(tmp_path, tiny_model_dir, tiny_task_yaml, modeling=["generative", "discriminative"],
              designs=["es-sde", "es-sde+inst-last"], reference="es-sde", train_sizes=[6])
    assert main(["run", str(p)]) == 0 and main(["report", str(tmp_path / "runs")]) == 0
    summary = (tmp_path / "runs" / "report.md").read_text().split("## Ranked summary")[1].split("## ")[0]
    assert "| instruction (gen es-sde) | test_id (ID) |" in summary
    assert "| instruction (cls es-sde) | test_id (ID) |" in summary


def test_multi_aspect_heads(tmp_path, tiny_model_dir):
    task_yaml = family_task(tmp_path, "multi_aspect")
    assert main(["run", str(study(tmp_path, tiny_model_dir, task_yaml, train_sizes=[6]))]) == 0
    (m,) = cells(tmp_path).values()
    ev = m["eval"]["test"]
    assert ev["primary"] == "kappa" and ev["format_errors"] == 0
    row = json.loads(next((tmp_path / "runs").glob("es-sde*")).joinpath("predictions.jsonl").read_text()
                     .splitlines()[0])
    assert set(row["parsed"]) == {"food", "price", "service"} and len(row["scores"]) == 3


def test_encoder_backbone(tmp_path, tiny_bert_dir, tiny_task_yaml):
    assert main(["run", str(study(tmp_path, tiny_bert_dir, tiny_task_yaml))]) == 0
    (m,) = cells(tmp_path).values()
    assert m["eval"]["test_ood"]["n"] == 3


@pytest.mark.parametrize("backbone, max_length", [("tiny_model_dir", 40), ("tiny_bert_dir", 16)])
def test_head_cells_count_inputs_cut_to_fit_max_length(tmp_path, tiny_task_yaml, backbone, max_length, request):
    p = study(tmp_path, request.getfixturevalue(backbone), tiny_task_yaml,
              train={"epochs": 1, "batch_size": 4, "max_length": max_length, "precision": "fp32"})
    assert main(["run", str(p)]) == 0
    (m,) = cells(tmp_path).values()
    d = next((tmp_path / "runs").glob("es-sde*"))
    assert json.loads((d / "manifest.json").read_text())["train"]["truncated_samples"] > 0
    assert sum(e["prompts_truncated"] for e in m["eval"].values()) > 0


def test_encoder_cannot_generate(tmp_path, tiny_bert_dir, tiny_task_yaml, capsys):
    assert main(["run", str(study(tmp_path, tiny_bert_dir, tiny_task_yaml, modeling="generative"))]) == 2
    assert "is an encoder" in capsys.readouterr().err


def test_span_family_has_no_head(tmp_path, tiny_model_dir, capsys):
    task_yaml = family_task(tmp_path, "span_extraction")
    assert main(["run", str(study(tmp_path, tiny_model_dir, task_yaml, train_sizes=[6]))]) == 2
    assert "closed label set" in capsys.readouterr().err


def test_head_cells_skip_designs_that_differ_only_in_the_response(tmp_path, tiny_model_dir, tiny_task_yaml):
    """es-sde, es-sde+cot and es-sde+num give a head the same inputs: one discriminative cell, three generative."""
    from sdelab.config import load_study
    from sdelab.study.grid import expand_all
    p = study(tmp_path, tiny_model_dir, tiny_task_yaml, modeling=["generative", "discriminative"],
              designs=["es-sde", "es-sde+cot", "es-sde+num", "es-sde+complex"])
    got = {s.study.modeling: [c.design.name for c in s.cells] for s in expand_all(load_study(p)[0], tmp_path)}
    assert got == {"generative": ["es-sde", "es-sde+cot", "es-sde+num", "es-sde+complex"],
                   "discriminative": ["es-sde", "es-sde+complex"]}


def test_a_cot_design_listed_first_does_not_stop_the_head_cells(tmp_path, tiny_model_dir, tiny_task_yaml):
    """A study comparing paradigms may list a CoT design first: the head runs its rationale-free twin."""
    from sdelab.config import load_study
    from sdelab.study.grid import expand_all
    p = study(tmp_path, tiny_model_dir, tiny_task_yaml, modeling=["generative", "discriminative"],
              designs=["es-sde+cot", "es-sde"])
    got = {s.study.modeling: [c.design.name for c in s.cells] for s in expand_all(load_study(p)[0], tmp_path)}
    assert got == {"generative": ["es-sde+cot", "es-sde"], "discriminative": ["es-sde"]}
