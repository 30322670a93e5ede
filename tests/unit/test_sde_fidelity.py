"""The Sample Design Engineering designs and metrics as the authors' code (GitHub beyondguo/LLM-Tuning, SDE/ and
MASA/) defines them. Every expected string below was produced by running a verbatim copy of the authors' function
on the same input (generate_ner_train_data.py's generate_sample, the MASA prediction file's targets, maven_eval.py
and ner_metric_report.py's matching, sentiment_analysis.py's kappa), so the definitions cannot drift again.
Deliberate differences are listed in docs/design-options.md and asserted here as such."""
import numpy as np
import pytest

from sdelab.design import get_design, parse, render
from sdelab.metrics.aspects import kappa_from_confusion
from sdelab.metrics.spans import _count
from sdelab.tasks import get_task
from sdelab.tasks.task import UNMENTIONED, Example

GENIA, MAVEN, MASA = get_task("genia"), get_task("maven-ed"), get_task("sde-masa")
SENT = "IL-2 gene expression requires NF-kappa B ."
TWO = Example("g", {"text": SENT}, (("dna", "IL-2 gene"), ("protein", "NF-kappa B")))
THREE = Example("g", {"text": SENT}, (("dna", "IL-2 gene"), ("protein", "IL-2"), ("protein", "NF-kappa B")))
NONE = Example("g", {"text": "These results were reproducible ."}, ())
DESC1 = ('Read the given sentence carefully, identify all named entities of type "DNA", "RNA", "protein", '
         '"cell_type" or "cell_line".')


def design(task, spec):
    return get_design(spec, task.spec.family, task.spec.presets())


def target(task, spec, ex):
    return render(task, design(task, spec), ex).response.text


def test_genia_default_weak1_good1_good2_targets_as_generate_ner_train_data():
    assert target(GENIA, "heuristic", TWO) == '["DNA","IL-2 gene"]\n["protein","NF-kappa B"]'  # default
    assert target(GENIA, "weak", TWO) == "'DNA': 'IL-2 gene'; 'protein': 'NF-kappa B'"  # weak1
    assert target(GENIA, "es-sde", TWO) == "'DNA': 'IL-2 gene'\n'RNA': ''\n'protein': 'NF-kappa B'\n" \
                                           "'cell_type': ''\n'cell_line': ''"  # good1
    assert target(GENIA, "es-sde+json", TWO) == (  # good2
        '{"entity_type": "DNA", "entity_names": ["IL-2 gene"]}\n{"entity_type": "RNA", "entity_names": []}\n'
        '{"entity_type": "protein", "entity_names": ["NF-kappa B"]}\n{"entity_type": "cell_type", "entity_names": '
        '[]}\n{"entity_type": "cell_line", "entity_names": []}')
    assert target(GENIA, "heuristic", THREE) == '["DNA","IL-2 gene"]\n["protein","IL-2"]\n["protein","NF-kappa B"]'
    assert target(GENIA, "weak", THREE) == "'DNA': 'IL-2 gene'; 'protein': 'IL-2', 'NF-kappa B'"
    assert target(GENIA, "es-sde", THREE) == "'DNA': 'IL-2 gene'\n'RNA': ''\n'protein': 'IL-2', 'NF-kappa B'\n" \
                                             "'cell_type': ''\n'cell_line': ''"
    assert target(GENIA, "es-sde", NONE) == "'DNA': ''\n'RNA': ''\n'protein': ''\n'cell_type': ''\n'cell_line': ''"
    # deliberate: an empty answer is what the prompt asks ('[]') or the OU word, not the code's empty string
    assert target(GENIA, "heuristic", NONE) == "[]" and target(GENIA, "weak", NONE) == "none"
    # a text holding a single quote is written as str(list) writes it
    assert target(GENIA, "weak", Example("g", {"text": "x"}, (("dna", "5' UTR"),))) == "'DNA': \"5' UTR\""


def test_genia_prompts_carry_the_codes_wording():
    p = render(GENIA, design(GENIA, "heuristic"), TWO, response=False).prompt_text
    assert p == (DESC1 + ' Answer in the format ["entity_type", "entity_name"]. If no entity exists, then just '
                 'answer "[]".\nGiven sentence: "' + SENT + '"')
    weak = render(GENIA, design(GENIA, "weak"), TWO, response=False).prompt_text
    assert weak.startswith(f'Given sentence: "{SENT}"\n{DESC1} For each entity type, answer in the format like ')
    assert weak.endswith("then concat answer for each type with ';'. Only output entity types that contain entities.")
    good1 = render(GENIA, design(GENIA, "es-sde"), TWO, response=False).prompt_text
    assert "(when no entities exist, answer  \"'entity_type': ''\")." in good1
    for name in ("desc2", "desc3"):  # the code's other two wordings, for the instruction-robustness test
        assert "cell_line" in render(GENIA, design(GENIA, f"es-sde+tpl={name}"), TWO, response=False).prompt_text


def test_genia_parses_the_codes_outputs():
    h, w, g1 = (design(GENIA, s) for s in ("heuristic", "weak", "es-sde"))
    gold = THREE.gold
    assert parse(GENIA, h, '["DNA","IL-2 gene"]\n["protein","IL-2"]\n["protein","NF-kappa B"]') == (gold, None)
    assert parse(GENIA, h, '["DNA", "IL-2 gene"]\n["protein", "IL-2"]\n["protein", "NF-kappa B"]') == (gold, None)
    assert parse(GENIA, h, "[]") == ((), None) and parse(GENIA, w, "") == ((), "empty")
    assert parse(GENIA, w, "'DNA': 'IL-2 gene'; 'protein': 'IL-2', 'NF-kappa B'") == (gold, None)
    assert parse(GENIA, g1, "'DNA': 'IL-2 gene'\n'RNA': ''\n'protein': 'IL-2', 'NF-kappa B'\n'cell_type': ''\n"
                            "'cell_line': ''") == (gold, None)


def test_maven_heuristic_as_the_codes_test_file():
    ex = Example("m", {"text": "The French invaded and the conquest began ."},
                 (("attack", "invaded"), ("process_start", "began"), ("conquering", "conquest")))
    assert target(MAVEN, "heuristic", ex) == '["Attack", "invaded"]\n["Process_start", "began"]\n' \
                                             '["Conquering", "conquest"]'
    prompt = render(MAVEN, design(MAVEN, "heuristic"), ex, response=False).prompt_text
    assert prompt.startswith("We define the event types set: Catastrophe, Attack, Hostile_encounter, Causation, "
                             "Process_start, Competition, Motion, Social_event, Killing, Conquering. Given a "
                             "sentence, please detect the type of events it contains and extract the trigger word "
                             'from it. Please generate the result in the following format: "["event_type", '
                             '"trigger_word"]\\n..."If no event exists, just answer[].\nThe sentence is: ')
    # its JSON keys and NONE placeholder, as maven_eval.py's convert_to_list reads them
    assert target(MAVEN, "es-sde+json", ex).splitlines()[1] == '{"event_type": "Attack", "trigger word": ["invaded"]}'
    assert target(MAVEN, "es-sde", ex).splitlines()[0] == "Catastrophe: NONE"


def test_masa_baseline_and_numlabel_as_the_codes():
    gold = {"food": "positive", "drinks": UNMENTIONED, "price": UNMENTIONED, "hygiene": UNMENTIONED,
            "staff": "negative", "parking": UNMENTIONED}
    ex = Example("r", {"text": "菜很好吃，就是服务员态度太差了。"}, gold)
    # the stored instruction-last target's form (the MASA prediction file)
    assert target(MASA, "heuristic", ex) == "食品评价：正面，饮品评价：未提及，价格水平：未提及，卫生情况：未提及，" \
                                           "服务人员态度：负面，停车方便程度：未提及。"
    # NumLabel: format_parser.py's text_num = {'1': 正面, '0': 中性, '-1': 负面, '-2': 未提及}, instruction included
    num = render(MASA, design(MASA, "heuristic+num"), ex)
    assert num.response.text == \
        "食品评价：1，饮品评价：-2，价格水平：-2，卫生情况：-2，服务人员态度：-1，停车方便程度：-2。"
    assert "1=正面，0=中性，-1=负面，-2=未提及" in num.prompt_text and "未提及”" not in num.prompt_text
    # JSON: one object per aspect per line, keys 方面 / 情感 (format_parser.py reads eval_l["方面"], eval_l["情感"])
    assert target(MASA, "es-sde+json", ex).splitlines()[:2] == ['{"方面": "食品评价", "情感": "正面"}',
                                                              '{"方面": "饮品评价", "情感": "未提及"}']
    for spec in ("heuristic+num", "es-sde+json", "es-sde+json+ou+num"):
        assert parse(MASA, design(MASA, spec), target(MASA, spec, ex)) == (gold, None)


def test_masa_kappa_reproduces_the_stored_result():
    """sentiment_analysis.py's stored confusion matrix (rows gold, columns prediction: 正面, 中性, 负面, 未提及) gives
    its stored kappa 0.7639; the transposed weights would give 0.7382."""
    obs = np.array([[92, 1, 2, 5], [12, 3, 4, 3], [5, 0, 7, 3], [4, 0, 1, 158]], dtype=float)
    full = np.hstack([obs, np.zeros((4, 1))])[None]
    assert round(float(kappa_from_confusion(full)[0]), 4) == 0.7639


@pytest.mark.parametrize("rule,gold,pred,counts", [
    # ner_metric_report.py: ratio > 0.5 AND containment; the type must still match
    ("ratio_contained", [("dna", "IL-2 gene"), ("protein", "NF-kappa B")],
     [("dna", "IL-2 genes"), ("protein", "NF-kappa B complex")], (2, 2, 2)),
    ("ratio_contained", [("dna", "IL-2 gene")], [("dna", "IL-4 gene")], (0, 1, 1)),  # ratio .889, not contained
    ("ratio_contained", [("protein", "NF-kappa B")], [("dna", "NF-kappa B complex")], (0, 1, 1)),  # wrong type
    # maven_eval.py: ratio > 0.5 alone; distinct predictions scored, a repeated one is a false positive
    ("ratio", [("causation", "led to")], [("causation", "led"), ("causation", "led")], (1, 2, 1)),
    ("ratio", [("conquering", "captured")], [("conquering", "captures")], (1, 1, 1)),  # .875, no containment
    ("ratio", [("motion", "proceed"), ("conquering", "taking"), ("conquering", "captured")],
     [("conquering", "captured")], (1, 1, 3)),
])
def test_soft_span_matching_per_task_as_the_codes(rule, gold, pred, counts):
    assert _count(gold, pred, rule) == counts
    assert _count(gold, pred, None)[1:] == counts[1:]


def test_the_tasks_declare_their_rules():
    assert GENIA.spec.soft_match == "ratio_contained" and MAVEN.spec.soft_match == "ratio"


def test_masa_cot_and_rcot_are_json_lines_with_a_description_as_format_parser_reads_them():
    """format_parser.py reads cot / rev-cot outputs as one dict per aspect per line with keys 方面 and 情感 (its
    comment gives the CoT order aspect, description, sentiment); the description key is not stored (ours: 描述)."""
    gold = {"food": "positive", "drinks": UNMENTIONED, "price": UNMENTIONED, "hygiene": UNMENTIONED,
            "staff": "negative", "parking": UNMENTIONED}
    ex = Example("r", {"text": "菜很好吃，就是服务员态度太差了。"}, gold, rationale="食品评价：菜好吃\n服务人员态度：态度差")
    cot = target(MASA, "heuristic+cot", ex).splitlines()
    assert cot[0] == '{"方面": "食品评价", "描述": "菜好吃", "情感": "正面"}' and len(cot) == 6
    rcot = target(MASA, "heuristic+rcot", ex).splitlines()
    assert rcot[4] == '{"方面": "服务人员态度", "情感": "负面", "描述": "态度差"}'
    assert parse(MASA, design(MASA, "heuristic+cot"), "\n".join(cot)) == (gold, None)
