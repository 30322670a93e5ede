from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sdelab.design import get_design, parse, parse_lenient, render
from sdelab.errors import SdelabError
from sdelab.tasks import get_task, load_task_file


@pytest.fixture(scope="module")
def demo():
    t = get_task("demo-reviews")
    return t, t.load("train", Path("."))


def test_instruction_placement(demo):
    task, ex = demo
    first = render(task, get_design("inst-first"), ex[0])
    last = render(task, get_design("inst-last"), ex[0])
    none = render(task, get_design("no-inst"), ex[0])
    inst = task.template(None).instruction
    assert [s.kind for s in first.prompt] == ["instruction", "sep", "input"]
    assert [s.kind for s in last.prompt] == ["input", "sep", "instruction"]
    assert [s.kind for s in none.prompt] == ["input"] and inst not in none.prompt_text
    assert first.prompt_text.startswith(inst) and last.prompt_text.endswith(inst)
    assert first.response.text == last.response.text == task.spec.labels[ex[0].label]


def test_input_loss_marks_prompt_trained(demo):
    task, ex = demo
    assert not any(s.trained for s in render(task, get_design("inst-first"), ex[0]).prompt)
    assert all(s.trained for s in render(task, get_design("inst-first+mi"), ex[0]).prompt)


def test_template_choice(demo):
    task, ex = demo
    s = render(task, get_design({"template": "question"}), ex[0])
    assert task.template("question").instruction in s.prompt_text


def test_design_names_and_errors():
    assert get_design("inst-last+mi").input_loss and get_design("inst-last+mi").instruction == "last"
    assert get_design({"instruction": "none", "input_loss": True}).name == "no-inst+mi"
    with pytest.raises(SdelabError, match="did you mean 'inst-last'"):
        get_design("inst-lst")
    with pytest.raises(SdelabError, match="unknown design option"):
        get_design({"placement": "first"})


@pytest.mark.parametrize("design", ["inst-first", "inst-last", "no-inst", "inst-first+mi"])
def test_parse_inverts_render(demo, design):
    task, examples = demo
    d = get_design(design)
    for ex in examples:
        assert parse(task, d, render(task, d, ex).response.text) == (ex.label, None)


def test_parse_errors_and_lenient(demo):
    task, _ = demo
    d = get_design("inst-first")
    assert parse(task, d, "") == (None, "empty")
    assert parse(task, d, "  Positive.\nbecause") == ("positive", None)
    assert parse(task, d, "I think it is negative") == (None, "unknown_label")
    assert parse(task, d, "I think it is negat", truncated=True) == (None, "truncated")
    assert parse_lenient(task, d, "I think it is negative") == "negative"
    assert parse_lenient(task, d, "positive or negative") is None
    assert parse_lenient(task, d, "nonnegative") is None  # whole words only for latin labels


def test_chinese_labels_parse():
    task = get_task("lcqmc")
    d = get_design("inst-first")
    assert parse(task, d, "相同。") == ("same", None)
    assert parse(task, d, "不同") == ("different", None)
    assert parse_lenient(task, d, "这两个句子的意思不同") == "different"


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_parser_never_raises(text):
    task = get_task("demo-reviews")
    d = get_design("inst-first")
    pred, err = parse(task, d, text)
    assert (pred is None) != (err is None)
    parse_lenient(task, d, text)


def test_tiny_task_loads(tiny_task_yaml):
    assert load_task_file(tiny_task_yaml).name == "tiny-reviews"
