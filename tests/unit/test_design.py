"""The design engine: every option changes the rendered sample the way its name says, and parse inverts render
for every family and every design (property tests)."""
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sdelab.design import get_design, parse, render
from sdelab.design import codec
from sdelab.design.codec import ERROR_KINDS, MissingRationale, answer_text
from sdelab.design.options import (APPLIES, ONLY, OPTIONS, PRESETS, Design, expand_designs, grid,
                                   one_factor_variants)
from sdelab.errors import SdelabError
from sdelab.tasks import get_task
from sdelab.tasks.task import UNMENTIONED, Example

from conftest import ED_ZH, GEN_EN, MASA_EN, MASA_ZH, NER_EN, make_task

MASA = make_task(MASA_ZH)
EX = Example("r1", {"text": "菜很好吃，但是价格太贵了。"},
             {"food": "positive", "price": "negative", "hygiene": UNMENTIONED, "staff": UNMENTIONED,
              "parking": UNMENTIONED, "drinks": UNMENTIONED}, rationale="菜好吃是正面，价格贵是负面。")


@pytest.fixture(scope="module")
def demo():
    t = get_task("demo-reviews")
    return t, t.load("train", Path("."))


# -------------------------------------------------------------------------------- one test per option ---
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
    assert not any(s.trained for s in render(task, get_design("es-sde"), ex[0]).prompt)
    assert all(s.trained for s in render(task, get_design("es-sde+mi"), ex[0]).prompt)


def test_output_formats_zh():
    assert answer_text(MASA, get_design("es-sde+natural"), EX.gold) == \
        "食品评价：正面，价格水平：负面，卫生情况：未提及，服务态度：未提及，停车方便：未提及，饮品：未提及。"
    assert answer_text(MASA, get_design("es-sde"), EX.gold).splitlines()[:2] == ["食品评价：正面", "价格水平：负面"]
    # JSON as the SDE code writes it: one object per aspect per line; the whole-answer object is json_object
    assert answer_text(MASA, get_design("es-sde+json+ou"), EX.gold) == \
        '{"方面": "食品评价", "情感": "正面"}\n{"方面": "价格水平", "情感": "负面"}'
    assert answer_text(MASA, get_design("es-sde+json-object+ou"), EX.gold) == '{"食品评价": "正面", "价格水平": "负面"}'


def test_output_formats_en():
    task = make_task(MASA_EN)
    gold = {"food": "positive", "service": "negative", "price": UNMENTIONED, "ambience": UNMENTIONED,
            "misc": UNMENTIONED}
    assert answer_text(task, get_design("es-sde+natural+ou"), gold) == "food: positive, service: negative."
    assert answer_text(task, get_design("es-sde+ou"), gold) == "food: positive\nservice: negative"
    assert answer_text(task, get_design("es-sde+ou"), {k: UNMENTIONED for k in gold}) == "none"


def test_unmentioned_placeholder_vs_omit():
    pu = answer_text(MASA, get_design("es-sde"), EX.gold)
    ou = answer_text(MASA, get_design("es-sde+ou"), EX.gold)
    assert pu.count("\n") == 5 and "卫生情况：未提及" in pu
    assert ou == "食品评价：正面\n价格水平：负面"
    assert parse(MASA, get_design("es-sde+ou"), ou) == (EX.gold, None)


def test_text_vs_number_labels(demo):
    assert answer_text(MASA, get_design("es-sde+num+natural"), EX.gold) == \
        "食品评价：1，价格水平：-1，卫生情况：-2，服务态度：-2，停车方便：-2，饮品：-2。"
    task, ex = demo
    s = render(task, get_design("es-sde+num"), ex[0])
    assert s.response.text == str(task.spec.label_numbers[ex[0].label])
    assert "1=positive" in s.prompt_text  # the instruction tells what the numbers mean


def test_reasoning_cot_and_reverse_cot(demo):
    # multi-aspect: the SDE code's form, a description inside each aspect's JSON line (before / after the label);
    # a rationale that is not per aspect describes each mentioned one
    cot = render(MASA, get_design("es-sde+cot"), EX).response.text
    rcot = render(MASA, get_design("es-sde+rcot"), EX).response.text
    assert cot.splitlines()[0] == '{"方面": "食品评价", "描述": "%s", "情感": "正面"}' % EX.rationale
    assert rcot.splitlines()[2] == '{"方面": "卫生情况", "情感": "未提及", "描述": "评论没有提到这个方面。"}'
    per = Example("x", EX.fields, EX.gold, rationale="食品评价：菜很好吃\n价格水平：太贵")
    assert render(MASA, get_design("es-sde+cot+ou"), per).response.text == (
        '{"方面": "食品评价", "描述": "菜很好吃", "情感": "正面"}\n{"方面": "价格水平", "描述": "太贵", "情感": "负面"}')
    # a single label: a free rationale, then the answer (the short-text-matching paper's CoT)
    task, ex = demo
    free = render(task, get_design("es-sde+cot"), Example("y", ex[0].fields, ex[0].gold, rationale="why")).response
    assert free.text == "why\nAnswer:\n" + ex[0].gold
    assert parse(MASA, get_design("es-sde+cot"), cot) == (EX.gold, None)
    assert parse(MASA, get_design("es-sde+rcot"), rcot) == (EX.gold, None)
    with pytest.raises(MissingRationale):
        render(MASA, get_design("es-sde+cot"), Example("x", EX.fields, EX.gold))
    # evaluation prompts need no rationale
    assert render(MASA, get_design("es-sde+cot"), Example("x", EX.fields, EX.gold), response=False).response is None


def test_prompt_style_concise_vs_complex():
    task = get_task("lcqmc")
    ex = Example("1", {"text_a": "怎么还款", "text_b": "如何还钱"}, "same")
    concise = render(task, get_design("es-sde"), ex).prompt_text
    complex_ = render(task, get_design("es-sde+complex"), ex).prompt_text
    assert concise.startswith(task.template(None).instruction)
    assert "标签定义" in complex_ and "标签定义" not in concise and len(complex_) > 2 * len(concise)


def test_template_wording(demo):
    task, ex = demo
    s = render(task, get_design("es-sde+tpl=question"), ex[0])
    assert task.template("question").instruction in s.prompt_text
    with pytest.raises(SdelabError, match="no template 'nope'"):
        render(task, get_design("es-sde+tpl=nope"), ex[0])


def test_demonstrations_fixed_random_similar(demo):
    from sdelab.design.demos import choose_demos
    task, ex = demo
    pool, queries = ex[:100], ex[:20]
    fixed = choose_demos(get_design("es-sde+k3+fixed"), pool, queries, seed=0)
    assert all(len(d) == 3 for d in fixed)
    assert len({tuple(x.id for x in d) for d in fixed if not any(x.id == q.id for x, q in zip(d, queries))}) <= 4
    rnd = choose_demos(get_design("es-sde+k3+random"), pool, queries, seed=0)
    assert rnd == choose_demos(get_design("es-sde+k3+random"), pool, queries, seed=0)  # seeded
    assert len({tuple(x.id for x in d) for d in rnd}) > 10
    for design in ("es-sde+k3+similar", "es-sde+k3+similar+bm25"):
        sim = choose_demos(get_design(design), pool, queries, seed=0)
        for q, d in zip(queries, sim):
            assert q.id not in {x.id for x in d} and len(d) == 3
    for q, d in zip(queries + fixed and queries, fixed):
        assert q.id not in {x.id for x in d}  # never the example itself
    s = render(task, get_design("es-sde+k3"), queries[0], fixed[0])
    assert s.prompt[0].kind == "demos" and all(x.fields["text"] in s.prompt[0].text for x in fixed[0])


def test_similar_demos_are_nearest():
    from sdelab.design.demos import choose_demos
    pool = [Example(str(i), {"text": t}, "x") for i, t in enumerate(
        ["the battery dies fast", "lovely pasta and wine", "battery life is short and dies", "the hotel room"])]
    q = [Example("q", {"text": "my battery dies"}, "x")]
    for sim in ("tfidf", "bm25"):
        d = choose_demos(get_design({"demos": 2, "demo_selection": "similar", "demo_similarity": sim}), pool, q, 0)
        assert {x.id for x in d[0]} == {"0", "2"}


# ----------------------------------------------------------------------------------------- presets ---
def test_presets_and_one_factor_names():
    assert PRESETS["es-sde"] == Design("es-sde")
    h = get_design("heuristic")
    assert (h.instruction, h.output_format, h.unmentioned, h.labels, h.reasoning) == \
        ("last", "natural", "placeholder", "text", "none")
    assert get_design("heuristic", own={"heuristic": {"instruction": "first", "output_format": "json"}}).output_format == "json"
    d = get_design("es-sde+json+ou")
    assert (d.output_format, d.unmentioned, d.name) == ("json", "omit", "es-sde+json+ou")
    assert get_design({"instruction": "none", "input_loss": True}).name == "es-sde+no-inst+mi"
    names = [v.name for v in one_factor_variants("es-sde", "multi_aspect")]
    assert {"es-sde+inst-last", "es-sde+no-inst", "es-sde+mi", "es-sde+natural", "es-sde+json", "es-sde+ou",
            "es-sde+num", "es-sde+cot", "es-sde+rcot", "es-sde+complex"} == set(names)
    assert len(grid("es-sde", {"output_format": ["natural", "lines", "json"], "unmentioned": ["placeholder",
                                                                                             "omit"]})) == 6
    assert len(expand_designs(["heuristic", {"one_factor_from": "es-sde"}], "multi_aspect")) == 12


def test_design_errors():
    with pytest.raises(SdelabError, match="did you mean 'es-sde'"):
        get_design("es-sd")
    with pytest.raises(SdelabError, match="unknown design change"):
        get_design("es-sde+jsn")
    with pytest.raises(SdelabError, match="unknown design option"):
        get_design({"placement": "first"})
    with pytest.raises(SdelabError, match="must be one of"):
        get_design({"output_format": "yaml"})
    with pytest.raises(SdelabError, match="single_classification family cannot use"):
        get_design("es-sde+json", "single_classification")
    assert get_design("es-sde", "single_classification").output_format == "lines"  # preset values are fine


# ---------------------------------------------------------------------------- property tests: every family ---
WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789-()/'+αβκ蛋白质细胞基因", min_size=1,
               max_size=8)
# a span that reads as a placeholder once normalized as the parser does (") nonE" -> "none") cannot be told from one
PLACEHOLDERS = {codec._norm(lex[k]) for lex in codec.LANG.values() for k in ("none", "span_placeholder",
                                                                           "aspect_placeholder")}
SPAN_TEXT = st.lists(WORD, min_size=1, max_size=4).map(" ".join).filter(lambda s: codec._norm(s) not in PLACEHOLDERS)
FAMILY_TASKS = {"masa_zh": make_task(MASA_ZH), "masa_en": make_task(MASA_EN), "ner_en": make_task(NER_EN),
                "ed_zh": make_task(ED_ZH), "gen_en": make_task(GEN_EN)}


def gold_strategy(task):
    fam = task.spec.family
    if fam == "multi_aspect":
        return st.fixed_dictionaries({t: st.sampled_from(task.label_names) for t in task.spec.targets})
    if fam == "span_extraction":
        order = list(task.spec.targets)
        return st.lists(st.tuples(st.sampled_from(order), SPAN_TEXT), max_size=6).map(
            lambda xs: tuple(sorted(xs, key=lambda s: order.index(s[0]))))
    if fam == "text_generation":
        return st.lists(st.text(alphabet="abc de?fg,.", min_size=1, max_size=20).filter(str.strip), min_size=1,
                        max_size=3).map(lambda xs: "\n".join(x.strip() for x in xs))
    return st.sampled_from(task.label_names)


def designs_for(family):
    out = []
    for key, values in OPTIONS.items():
        if key in APPLIES[family]:
            out += [get_design({key: v}) for v in values]
    out += [get_design("heuristic"), get_design("es-sde+json+ou+num+cot"), get_design("es-sde+natural+ou+rcot")]
    ok = []
    for d in out:
        bad = [k for k in OPTIONS if k not in APPLIES[family] and getattr(d, k) != getattr(Design(), k)]
        bad += [k for (k, v), fam in ONLY.items() if getattr(d, k) == v and fam != family]
        if not bad and not (family == "text_generation" and d.reasoning != "none"):
            ok.append(d)
    return ok


ALL_TASKS = {**FAMILY_TASKS, "single": get_task("demo-reviews"), "pair": get_task("lcqmc")}
CASES = [(name, d) for name, t in ALL_TASKS.items() for d in designs_for(t.spec.family)]


@pytest.mark.parametrize("name,design", CASES, ids=[f"{n}-{d.name}" for n, d in CASES])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_parse_inverts_render(name, design, data):
    task = ALL_TASKS[name]
    gold = data.draw(gold_strategy(task))
    fields = {f: "some input text" for f in task.spec.inputs}
    ex = Example("x", fields, gold, rationale="because of the words used.\nsecond line")
    sample = render(task, design, ex)
    assert parse(task, design, sample.response.text) == (gold, None)


@pytest.mark.parametrize("name", list(ALL_TASKS))
@settings(max_examples=300, deadline=None)
@given(text=st.text(), fmt=st.sampled_from(list(OPTIONS["output_format"])), ou=st.booleans(),
       reasoning=st.sampled_from(["none", "cot", "reverse_cot"]))
def test_parser_survives_any_string(name, text, fmt, ou, reasoning):
    task = ALL_TASKS[name]
    d = Design("fuzz", output_format=fmt, unmentioned="omit" if ou else "placeholder", reasoning=reasoning)
    pred, err = parse(task, d, text)
    assert err is None or err in ERROR_KINDS


def test_error_kinds():
    d = get_design("es-sde")
    assert parse(MASA, d, "")[1] == "empty"
    assert parse(MASA, d, "食品评价：正面\n价格水平：负面")[1] == "missing_target"
    pred, err = parse(MASA, get_design("es-sde+ou"), "食品评价：正面\n价格水平：负面")
    assert err is None and pred["hygiene"] == UNMENTIONED
    assert parse(MASA, d, "好吃\n贵")[1] == "unparsable"
    assert parse(MASA, get_design("es-sde+ou"), "口味：正面")[1] == "unknown_target"
    pred, err = parse(MASA, get_design("es-sde+ou"), "食品评价：很棒")
    assert err == "unknown_label" and pred["food"] == UNMENTIONED
    pred, err = parse(MASA, get_design("es-sde+ou"), "食品评价：正面\n食品评价：负面")
    assert err == "duplicate_target" and pred["food"] == "positive"
    assert parse(MASA, get_design("es-sde+ou"), "食品评价：正", truncated=True)[1] == "truncated"
    assert parse(MASA, get_design("es-sde+json"), '{"方面": "食品评价", "情感": "正面"')[1] == "unparsable"
    assert parse(MASA, get_design("es-sde+json-object"), '{"食品评价": "正面"')[1] == "unparsable"
    assert parse(MASA, get_design("es-sde+cot"), "理由很多")[1] == "unparsable"


def test_lenient_salvage_for_labels(demo):
    task, _ = demo
    d = get_design("es-sde")
    assert parse(task, d, "  Positive.\nbecause") == ("positive", None)
    assert parse(task, d, "I think it is negative") == ("negative", "unknown_label")
    assert parse(task, d, "positive or negative") == (None, "unknown_label")
    assert parse(task, d, "nonnegative")[0] is None  # whole words only for latin labels
    assert parse(get_task("lcqmc"), d, "这两个句子的意思不同")[0] == "different"
    assert parse(get_task("lcqmc"), d, "相同。") == ("same", None)


def test_span_values_with_colons_and_commas_in_lines_and_json():
    task = make_task(NER_EN)
    gold = (("protein", "IL-2: receptor"), ("protein", "NF-kappa B, p50"), ("dna", "Inc."), ("dna", "a;"))
    for design in ("es-sde", "es-sde+json", "es-sde+ou", "es-sde+natural", "es-sde+pairs"):
        d = get_design(design)
        assert parse(task, d, render(task, d, Example("x", {"text": "t"}, gold)).response.text) == (gold, None)
