"""Model output is data: every parser, for every family and format, survives thousands of adversarial strings
(random text, near-miss formats built from the task's own words, JSON fragments, huge nesting) without raising
or evaluating anything."""
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sdelab.design.codec import ERROR_KINDS, _parse, parse
from sdelab.design.options import Design
from sdelab.tasks import get_task

from conftest import ED_ZH, GEN_EN, MASA_EN, MASA_ZH, NER_EN, make_task

TASKS = {"masa_zh": make_task(MASA_ZH), "masa_en": make_task(MASA_EN), "ner_en": make_task(NER_EN),
         "ed_zh": make_task(ED_ZH), "gen_en": make_task(GEN_EN), "single": get_task("demo-reviews"),
         "pair": get_task("lcqmc")}


def vocab(task):
    words = list((task.spec.targets or {}).values()) + list(task.spec.targets or {})
    words += list(task.spec.labels.values()) + ["未提及", "not mentioned", "none", "无", "-2", "1", "0", "-1"]
    return words + [":", "：", ",", "，", "。", ".", "\n", "{", "}", "[", "]", '"', "答案：", "理由：", "Answer:",
                    "Reason:", " ", "__import__('os')", "null", "true", "1e309", "\\u0000"]


def adversarial(task):
    return st.one_of(
        st.text(),
        st.lists(st.sampled_from(vocab(task)), max_size=40).map("".join),
        st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5),
                               st.sampled_from(vocab(task))),
                     lambda c: st.lists(c, max_size=4) | st.dictionaries(st.sampled_from(vocab(task)), c,
                                                                          max_size=4), max_leaves=20).map(repr),
        st.just("[" * 5000 + "]" * 5000), st.just("{" * 3000),
    )


@pytest.mark.parametrize("name", list(TASKS))
@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), fmt=st.sampled_from(["natural", "lines", "json"]), ou=st.booleans(),
       reasoning=st.sampled_from(["none", "cot", "reverse_cot"]), number=st.booleans())
def test_parsers_never_raise(name, data, fmt, ou, reasoning, number):
    task = TASKS[name]
    text = data.draw(adversarial(task))
    d = Design("fuzz", output_format=fmt, unmentioned="omit" if ou else "placeholder", reasoning=reasoning,
               labels="number" if number and task.spec.family != "span_extraction" else "text")
    # the inner parser itself must not raise (parse() also has a last-resort guard, which must not be needed)
    pred, err = _parse(task, d, text)
    assert err is None or err in ERROR_KINDS
    assert parse(task, d, text, truncated=data.draw(st.booleans()))[1] in (err, "truncated")
