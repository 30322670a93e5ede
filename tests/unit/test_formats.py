"""The data-set layout readers of sdelab.tasks.formats, on small inline files."""
import json

import pytest

import sdelab.tasks.formats as formats  # registers the layouts
from sdelab.errors import SdelabError
from sdelab.tasks.formats import FORMATS, LAYOUTS, read_rows
from sdelab.tasks.registry import load_task_file

LAYOUTS = ["absa_xml", "sentihood", "genia", "genia_minus_test", "maven_sde", "sde_masa"]

SEMEVAL14 = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<sentences>
    <sentence id="1">
        <text>But the staff was so horrible to us.</text>
        <aspectTerms><aspectTerm term="staff" polarity="negative" from="8" to="13"/></aspectTerms>
        <aspectCategories>
            <aspectCategory category="service" polarity="negative"/>
        </aspectCategories>
    </sentence>
    <sentence id="2">
        <text>Great food, but pricey &amp; loud.</text>
        <aspectCategories>
            <aspectCategory category="food" polarity="positive"/>
            <aspectCategory category="price" polarity="negative"/>
            <aspectCategory category="anecdotes/miscellaneous" polarity="conflict"/>
        </aspectCategories>
    </sentence>
    <sentence id="3">
        <text>Been going for years.</text>
        <aspectCategories>
            <aspectCategory category="anecdotes/miscellaneous" polarity="positive"/>
            <aspectCategory category="anecdotes/miscellaneous" polarity="positive"/>
        </aspectCategories>
    </sentence>
</sentences>
"""

SEMEVAL16 = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Reviews>
    <Review rid="9">
        <sentences>
            <sentence id="9:0">
                <text>The sushi was great but way overpriced.</text>
                <Opinions>
                    <Opinion target="sushi" category="FOOD#QUALITY" polarity="positive" from="4" to="9"/>
                    <Opinion target="sushi" category="FOOD#PRICES" polarity="negative" from="4" to="9"/>
                    <Opinion target="NULL" category="SERVICE#GENERAL" polarity="neutral" from="0" to="0"/>
                    <Opinion target="NULL" category="SERVICE#GENERAL" polarity="positive" from="0" to="0"/>
                </Opinions>
            </sentence>
            <sentence id="9:1" OutOfScope="TRUE">
                <text>My cousin lives nearby.</text>
            </sentence>
            <sentence id="9:2">
                <text>We went on a Tuesday.</text>
                <Opinions/>
            </sentence>
        </sentences>
    </Review>
</Reviews>
"""

SENTIHOOD = [
    {"opinions": [{"sentiment": "Negative", "aspect": "price", "target_entity": "LOCATION1"},
                  {"sentiment": "Positive", "aspect": "safety", "target_entity": "LOCATION2"}],
     "id": 7, "text": "  LOCATION1 is pricey,   LOCATION2 is safe "},
    {"opinions": [], "id": 8, "text": "I used to work near LOCATION1the station"},
]

GENIA_ARRAY = [
    {"tokens": ["IL-2", "gene", "expression", "in", "T", "cells", "."],
     "entities": [{"start": 4, "end": 6, "type": "cell_type"}, {"start": 0, "end": 2, "type": "DNA"},
                  {"start": 0, "end": 1, "type": "protein"}], "relations": {}, "org_id": "ge/test/1"},
    {"tokens": ["Nothing", "here", "."], "entities": [], "relations": {}, "org_id": "ge/test/2"},
]
GENIA_DOCS = [  # DyGIE-style concatenated objects, 'end' exclusive
    {"doc_key": "M:1", "sentences": [["Nothing", "here", "."]], "ner": [[]]},
    {"doc_key": "M:1", "sentences": [["Jurkat", "cells", "express", "NF-kappa", "B", "mRNA", "."]],
     "ner": [[[0, 2, "cell_line"], [3, 5, "G#protein_complex"], [3, 6, "RNA"]]]},
]

MAVEN = [
    {"input": 'We define the event types set: Attack, Motion. Given a sentence, ... If no event exists, just '
              'answer[]. The sentence is: The army marched north and attacked the town. Output: \n',
     "output": '["Motion", "marched"]\n["Attack", "attacked"]'},
    {"input": "We define ... The sentence is: Nothing happened. Output: \n", "output": "[]"},
]

MASA_INSTR = ("阅读上面这段评论，观察以下这些方面：食品评价，饮品评价，停车方便程度。请根据评论对这些方面进行情感分析，"
              "具体有四类情感：正面、负面、中性、未提及。\n输出：")
MASA = [
    {"prompt": "菜很好吃，就是停车难。\n---\n" + MASA_INSTR, "target": "食品评价：正面，饮品评价：未提及，停车方便程度：负面。",
     "prediction": "食品评价：正面。"},
    {"prompt": "饮料一般。\n第二行。\n---\n" + MASA_INSTR, "target": "饮品评价：中性。"},
]


def array(objs):
    """A JSON array with one object per line (objects start on lines 2, 3, ...)."""
    return "[\n" + ",\n".join(json.dumps(o, ensure_ascii=False) for o in objs) + "\n]\n"


def write(tmp_path, name, content):
    p = tmp_path / name
    p.write_text(content if isinstance(content, str) else json.dumps(content, ensure_ascii=False, indent=2),
                 encoding="utf-8")
    return p


def test_every_layout_is_registered():
    for name in LAYOUTS:
        assert name in FORMATS and name in LAYOUTS


@pytest.mark.parametrize("pols,expect", [
    (["positive"], "positive"), (["positive", "positive"], "positive"), (["Neutral", "negative"], "negative"),
    (["positive", "negative"], "conflict"), (["positive", "neutral", "negative"], "conflict"),
    (["conflict", "positive"], "conflict"), (["neutral"], "neutral"),
])
def test_combine_polarities(pols, expect):
    assert formats.combine_polarities(pols) == expect


def test_absa_xml_semeval14_layout(tmp_path):
    rows = read_rows(write(tmp_path, "r14.xml", SEMEVAL14), "absa_xml")
    assert [r.values["id"] for r in rows] == ["1", "2", "3"]
    assert [r.line for r in rows] == [3, 10, 18]
    assert rows[0].values["service"] == "negative" and rows[0].values["food"] == "unmentioned"
    assert rows[1].values["text"] == "Great food, but pricey & loud."
    assert rows[1].values["anecdotes/miscellaneous"] == "conflict"
    assert rows[2].values["anecdotes/miscellaneous"] == "positive"  # a repeated category counts once
    # every category of the file is a column of every row
    assert all({"service", "food", "price", "anecdotes/miscellaneous"} <= set(r.values) for r in rows)


def test_absa_xml_semeval16_layout(tmp_path):
    rows = read_rows(write(tmp_path, "r16.xml", SEMEVAL16), "absa_xml")
    r0, oos, empty = rows
    assert r0.values["FOOD"] == "conflict"  # positive quality + negative prices
    assert r0.values["FOOD#QUALITY"] == "positive" and r0.values["FOOD#PRICES"] == "negative"
    assert r0.values["SERVICE"] == "positive"  # neutral next to positive
    assert r0.values["DRINKS"] == "unmentioned" and r0.line == 5
    assert all(oos.values[e] == "out_of_scope" for e in formats.SEMEVAL16_ENTITIES)
    assert all(empty.values[e] == "unmentioned" for e in formats.SEMEVAL16_ENTITIES)


def test_absa_xml_in_a_task_maps_conflict_and_drops(tmp_path):
    write(tmp_path, "r14.xml", SEMEVAL14)
    y = write(tmp_path, "t.yaml", """name: t14
family: multi_aspect
language: en
inputs: [text]
columns: {misc: anecdotes/miscellaneous}
targets: {food: food, service: service, price: price, misc: miscellaneous}
labels: {positive: positive, neutral: neutral, negative: negative}
label_map: {positive: positive, neutral: neutral, negative: negative, unmentioned: unmentioned}
drop_labels: [conflict]
templates: [{name: t, instruction: "Aspects: {targets}.", input: "{text}"}]
splits: {train: {path: r14.xml, format: absa_xml}}
""")
    task = load_task_file(y)
    ex = task.load("train", tmp_path)
    assert [e.id for e in ex] == ["1", "3"] and task.skipped["train"] == 1
    assert ex[0].gold == {"food": "unmentioned", "service": "negative", "price": "unmentioned",
                          "misc": "unmentioned"}
    assert ex[0].source == "r14.xml:3"


def test_sentihood_one_row_per_target(tmp_path):
    rows = read_rows(write(tmp_path, "sentihood-dev.json", array(SENTIHOOD)), "sentihood")
    assert [(r.values["id"], r.values["target"]) for r in rows] == [
        ("7-LOCATION1", "LOCATION1"), ("7-LOCATION2", "LOCATION2"), ("8-LOCATION1", "LOCATION1")]
    a, b, c = rows
    assert a.values["sentence"] == "LOCATION1 is pricey, LOCATION2 is safe"
    assert a.values["text"] == "Target: LOCATION1\nSentence: LOCATION1 is pricey, LOCATION2 is safe"
    assert (a.values["price"], a.values["safety"]) == ("negative", "unmentioned")
    assert (b.values["price"], b.values["safety"]) == ("unmentioned", "positive")
    assert all(c.values[x] == "unmentioned" for x in formats.SENTIHOOD_ASPECTS)  # glued 'LOCATION1the' found
    assert [r.line for r in rows] == [2, 2, 3]


def test_genia_array_layout(tmp_path):
    rows = read_rows(write(tmp_path, "g.json", array(GENIA_ARRAY)), "genia")
    assert rows[0].values["text"] == "IL-2 gene expression in T cells ."
    spans = json.loads(rows[0].values["spans"])
    assert spans == [["protein", "IL-2"], ["dna", "IL-2 gene"], ["cell_type", "T cells"]]  # reading order
    assert all(t in rows[0].values["text"] for _, t in spans)
    assert json.loads(rows[1].values["spans"]) == [] and rows[1].values["id"] == "ge/test/2"
    assert [r.line for r in rows] == [2, 3]


def test_genia_dygie_layout_end_is_exclusive_and_types_mapped(tmp_path):
    text = "\n".join(json.dumps(d) for d in GENIA_DOCS)
    rows = read_rows(write(tmp_path, "dev.json", text), "genia")
    assert [r.line for r in rows] == [1, 2]
    assert [r.values["id"] for r in rows] == ["M:1", "M:1#2"]  # ids made unique
    assert json.loads(rows[1].values["spans"]) == [["cell_line", "Jurkat cells"], ["protein", "NF-kappa B"],
                                                   ["rna", "NF-kappa B mRNA"]]


@pytest.mark.parametrize("raw,name", [("DNA", "dna"), ("G#DNA_domain_or_region", "dna"), ("cell-line", "cell_line"),
                                      ("Cell type", "cell_type"), ("protein_molecule", "protein"), ("RNA", "rna"),
                                      ("other_name", "other_name")])
def test_genia_type_spellings(raw, name):
    assert formats.genia_type(raw) == name


def test_genia_minus_test_drops_shared_sentences(tmp_path):
    write(tmp_path, "genia_test.json", GENIA_ARRAY)
    dev = write(tmp_path, "dev.json", "\n".join(json.dumps(d) for d in GENIA_DOCS))
    rows = read_rows(dev, "genia_minus_test")
    assert [r.values["text"] for r in rows] == ["Jurkat cells express NF-kappa B mRNA ."]


def test_genia_minus_test_needs_the_test_file(tmp_path):
    dev = write(tmp_path, "dev.json", json.dumps(GENIA_DOCS[0]))
    with pytest.raises(SdelabError, match="genia_test.json"):
        read_rows(dev, "genia_minus_test")


def test_maven_sde(tmp_path):
    p = write(tmp_path, "maven.jsonl", "\n".join(json.dumps(d) for d in MAVEN) + "\n")
    rows = read_rows(p, "maven_sde")
    assert rows[0].values["text"] == "The army marched north and attacked the town."
    assert json.loads(rows[0].values["spans"]) == [["motion", "marched"], ["attack", "attacked"]]
    assert rows[1].values["text"] == "Nothing happened." and json.loads(rows[1].values["spans"]) == []
    assert [r.line for r in rows] == [1, 2]


def test_sde_masa(tmp_path):
    p = write(tmp_path, "masa.jsonl", "\n".join(json.dumps(d, ensure_ascii=False) for d in MASA) + "\n")
    rows = read_rows(p, "sde_masa", columns={"food": "食品评价", "drinks": "饮品评价", "parking": "停车方便程度"})
    a, b = rows
    assert a.values["text"] == "菜很好吃，就是停车难。" and b.values["text"] == "饮料一般。\n第二行。"
    assert (a.values["food"], a.values["drinks"], a.values["parking"]) == ("正面", "未提及", "负面")
    # aspects listed in the instruction but missing from the target are 未提及
    assert (b.values["food"], b.values["drinks"], b.values["parking"]) == ("未提及", "中性", "未提及")
    assert a.values["model_prediction"] == "食品评价：正面。" and "model_prediction" not in b.values


@pytest.mark.parametrize("fmt,name,content,expect", [
    ("absa_xml", "bad.xml", "<sentences>\n<sentence><text>x</text>\n</sentences>\n", ":3: malformed XML"),
    ("absa_xml", "notext.xml", "<sentences>\n<sentence id='1'>\n</sentence>\n</sentences>", ":2: a <sentence> without"),
    ("absa_xml", "noattr.xml", "<sentences>\n<sentence><text>x</text><aspectCategories>"
                               "<aspectCategory category='food'/></aspectCategories></sentence></sentences>",
     ":2: <aspectCategory> needs"),
    ("absa_xml", "none.xml", "<root/>", "no <sentence> elements"),
    ("sentihood", "bad.json", '[\n{"id": 1, "text": "LOCATION1", "opinions": []},\n{"id": 2,, }\n]',
     ":3: malformed JSON"),
    ("sentihood", "nokey.json", '[\n{"id": 1, "opinions": []}\n]', ":2: missing key 'text'"),
    ("genia", "bad.json", '{"tokens": ["a"], "entities": [{"start": 0, "end": 2, "type": "DNA"}]}',
     ":1: entity [0, 2) of type 'DNA' is outside the sentence"),
    ("genia", "trunc.json", '[{"tokens": ["a"], "entities": []},\n', ":2: malformed JSON"),
    ("genia", "what.json", '[{"words": ["a"]}]', ":1: expected an object with 'tokens'"),
    ("maven_sde", "bad.jsonl", '{"input": "The sentence is: x Output:", "output": "[\\"Attack\\"]"}\n',
     ":1: field 'output': gold line"),
    ("maven_sde", "noprompt.jsonl", '{"input": "hello", "output": "[]"}\n', ":1: field 'input': cannot find"),
    ("sde_masa", "bad.jsonl", '{"prompt": "a\\n---\\nb", "target": "ok"}\n{"prompt": "no separator", "target": "x"}\n',
     ":1: field 'target': cannot read 'ok'"),
    ("sde_masa", "nosep.jsonl", '{"prompt": "no separator", "target": "食品评价：正面"}\n', ":1: field 'prompt'"),
])
def test_malformed_files_name_file_and_line(tmp_path, fmt, name, content, expect):
    p = write(tmp_path, name, content)
    with pytest.raises(SdelabError) as e:
        read_rows(p, fmt)
    assert name in str(e.value) and expect in str(e.value)
