"""The multi-aspect and span-extraction tasks read their real data from ../shared/data (skipped when absent):
split sizes and label counts against the data sets' SOURCE.txt files (where they state them) and docs/data.md."""
import subprocess
import sys
from collections import Counter

import pytest

from sdelab.tasks import get_task
from sdelab.tasks.formats import read_rows

from conftest import DATA_ROOT, needs_data

pytestmark = pytest.mark.data  # needs ../shared/data (each test skips without it)

FOLDER = {"aic-d1": "ai_challenger_2018", "aic-d2": "ai_challenger_2018", "aic-en": "ai_challenger_2018",
          "asap": "asap", "sde-masa": "sde_llm_tuning", "mams": "mams_acsa",
          "semeval14-rest": "semeval2014_restaurants", "semeval16-rest": "semeval2016_restaurants",
          "sentihood": "sentihood", "sentihood-4": "sentihood", "genia": "genia_nested",
          "maven-ed": "sde_llm_tuning"}
TASKS = list(FOLDER)

# (task, split) -> (examples kept, rows skipped)
SIZES = {
    ("aic-d1", "train"): (1000, 0), ("aic-d1", "test"): (2000, 0),
    ("aic-d2", "train"): (1000, 0), ("aic-d2", "test"): (2000, 0),
    ("aic-en", "train"): (2000, 0), ("aic-en", "test"): (2000, 0),
    ("asap", "train"): (100, 0), ("asap", "dev"): (100, 0), ("asap", "test"): (100, 0),
    ("sde-masa", "train"): (50, 0), ("sde-masa", "test"): (50, 0),
    ("mams", "train"): (3149, 0), ("mams", "val"): (400, 0),
    ("semeval14-rest", "train"): (2343, 157), ("semeval14-rest", "test"): (510, 31),  # 'conflict' dropped
    ("semeval16-rest", "train"): (1937, 63), ("semeval16-rest", "test"): (642, 34),  # OutOfScope dropped
    ("sentihood", "train"): (3752, 0), ("sentihood", "dev"): (937, 0), ("sentihood", "test"): (1879, 0),
    ("sentihood-4", "train"): (3752, 0), ("sentihood-4", "dev"): (937, 0), ("sentihood-4", "test"): (1879, 0),
    ("genia", "train"): (1708, 0), ("genia", "test"): (1854, 0),
    ("maven-ed", "train"): (60, 0), ("maven-ed", "test"): (40, 0),
}
MULTI = {"positive", "neutral", "negative", "unmentioned"}


def load(name, split):
    task = get_task(name)
    return task, task.load(split, DATA_ROOT)


@pytest.mark.parametrize("name,split", [pytest.param(n, s, marks=needs_data(FOLDER[n])) for n, s in SIZES])
def test_every_split_loads_with_the_measured_size(name, split):
    task, ex = load(name, split)
    assert (len(ex), task.skipped[split]) == SIZES[(name, split)]
    assert all(e.fields["text"].strip() for e in ex)
    if task.spec.family == "multi_aspect":
        for e in ex:
            assert set(e.gold) == set(task.spec.targets)
            assert set(e.gold.values()) <= set(task.label_names)
        used = Counter(v for e in ex for v in e.gold.values())
        assert "unmentioned" in used and "positive" in used and "negative" in used
    else:
        for e in ex:
            assert all(typ in task.spec.targets and text in e.fields["text"] for typ, text in e.gold)


def test_every_task_and_split_is_covered():
    assert {(n, s) for n in TASKS for s in get_task(n).spec.splits} == set(SIZES)
    for n in TASKS:  # at least two template wordings, each with a complex prompt
        assert len(get_task(n).spec.templates) >= 2 and all(t.complex for t in get_task(n).spec.templates)


def test_task_files_validate_in_a_fresh_process():
    """A task YAML naming a layout format must validate before anything has read a data file; and the CLI lists
    every task."""
    code = ("from sdelab.tasks import get_task\n"
            f"for n in {TASKS!r}: get_task(n)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = subprocess.run([sys.executable, "-m", "sdelab", "tasks", "list"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert all(n in out.stdout for n in TASKS)


# -- label counts against SOURCE.txt ---------------------------------------------------------------------------
@needs_data("ai_challenger_2018")
@pytest.mark.parametrize("file,totals", [
    ("ktmud_chinese_valid.csv", {"-2": 24850, "1": 9787, "0": 3645, "-1": 1718}),
    ("brightmart_train2.csv", {"-2": 12515, "1": 4873, "0": 1773, "-1": 839}),
    ("ktmud_english_test.csv", {"-2": 25133, "1": 9588, "0": 3542, "-1": 1737}),
])
def test_ai_challenger_columns_and_label_totals(file, totals):
    rows = read_rows(DATA_ROOT / "ai_challenger_2018" / file)
    aspects = [c for c in rows[0].values if c not in ("id", "content")]
    assert len(aspects) == 20
    assert Counter(r.values[a] for r in rows for a in aspects) == totals
    for name in ("aic-d1", "aic-d2", "aic-en"):  # every mapped column is a real AI Challenger column
        cols = get_task(name).spec.columns
        assert set(cols) == set(get_task(name).spec.targets) | {"text"}
        assert set(cols.values()) - {"content"} <= set(aspects)


@needs_data("ai_challenger_2018")
def test_aic_d1_and_d2_share_files_but_no_aspect():
    d1, d2 = get_task("aic-d1"), get_task("aic-d2")
    assert not set(d1.spec.targets) & set(d2.spec.targets)
    assert not (set(d1.spec.columns.values()) & set(d2.spec.columns.values())) - {"content"}
    assert [e.fields for e in d1.load("test", DATA_ROOT)[:5]] == [e.fields for e in d2.load("test", DATA_ROOT)[:5]]


@needs_data("sde_llm_tuning")
def test_sde_masa_gold_distribution():
    _, ex = load("sde-masa", "test")
    assert Counter(e.gold["food"] for e in ex) == {"positive": 36, "neutral": 10, "negative": 4}
    assert Counter(e.gold["parking"] for e in ex) == {"unmentioned": 47, "positive": 2, "neutral": 1}
    assert all("\n---\n" not in e.fields["text"] and "观察以下这些方面" not in e.fields["text"] for e in ex)


@needs_data("mams_acsa")
@pytest.mark.parametrize("split,counts", [("train", {"positive": 1929, "neutral": 3077, "negative": 2084}),
                                          ("val", {"positive": 241, "neutral": 388, "negative": 259})])
def test_mams_polarity_counts_match_source(split, counts):
    _, ex = load("mams", split)
    c = Counter(v for e in ex for v in e.gold.values())
    assert {k: c[k] for k in counts} == counts
    assert all(sum(v != "unmentioned" for v in e.gold.values()) >= 2 for e in ex)  # MAMS: >= 2 aspects each


@needs_data("semeval2014_restaurants")
def test_semeval14_raw_counts_and_conflict_drop():
    rows = read_rows(DATA_ROOT / "semeval2014_restaurants" / "Restaurants_Train_v2.xml", "absa_xml")
    assert len(rows) == 3041
    cats = ["food", "service", "price", "ambience", "anecdotes/miscellaneous"]
    c = Counter(r.values[k] for r in rows for k in cats)
    # SOURCE: pos 2179, neg 839, neu 500, conflict 195; two sentences list the same category twice (positive)
    assert (c["positive"], c["negative"], c["neutral"], c["conflict"]) == (2177, 839, 500, 195)
    conflicted = sum(any(r.values[k] == "conflict" for k in cats) for r in rows)
    assert conflicted == 188 == 157 + 31
    for split in ("train", "test"):
        _, ex = load("semeval14-rest", split)
        assert all("conflict" not in e.gold.values() for e in ex)


@needs_data("semeval2016_restaurants")
def test_semeval16_sentences_and_conflict_mapping():
    for file, n in (("ABSA16_Restaurants_Train_SB1_v2.xml", 2000), ("EN_REST_SB1_TEST.xml.gold", 676)):
        rows = read_rows(DATA_ROOT / "semeval2016_restaurants" / file, "absa_xml")
        assert len(rows) == n
    rows = read_rows(DATA_ROOT / "semeval2016_restaurants" / "ABSA16_Restaurants_Train_SB1_v2.xml", "absa_xml")
    ent = ["RESTAURANT", "FOOD", "DRINKS", "AMBIENCE", "SERVICE", "LOCATION"]
    assert Counter(r.values[e] for r in rows for e in ent)["conflict"] == 57
    task, ex = load("semeval16-rest", "train")
    c = Counter(v for e in ex for v in e.gold.values())
    assert (c["positive"], c["negative"], c["neutral"]) == (1346, 589, 81 + 57)  # conflict -> neutral
    assert sum(all(v == "unmentioned" for v in e.gold.values()) for e in ex) == 229  # no-opinion sentences kept


@needs_data("sentihood")
@pytest.mark.parametrize("split,sentences,pos,neg", [("train", 2977, 2475, 921), ("dev", 747, 615, 223),
                                                     ("test", 1491, 1215, 462)])
def test_sentihood_counts_match_source(split, sentences, pos, neg):
    task, ex = load("sentihood", split)
    assert len({e.id.rsplit("-", 1)[0] for e in ex}) == sentences
    c = Counter(v for e in ex for v in e.gold.values())
    # train holds one opinion listed twice (same target, aspect and polarity): it counts once
    assert (c["positive"], c["negative"], c["neutral"]) == (pos - (split == "train"), neg, 0)
    assert all(e.fields["text"].startswith("Target: LOCATION") for e in ex)


@needs_data("genia_nested")
def test_genia_counts_and_no_test_sentence_in_train():
    _, test = load("genia", "test")
    assert Counter(t for e in test for t, _ in e.gold) == {"protein": 3084, "dna": 1262, "cell_type": 606,
                                                           "cell_line": 445, "rna": 109}
    _, train = load("genia", "train")
    dev = read_rows(DATA_ROOT / "genia_nested" / "sodner_split_dev.json", "genia")
    assert len(dev) == 1765 and len(dev) - len(train) == 57
    assert not {e.fields["text"] for e in train} & {e.fields["text"] for e in test}
    assert set(Counter(t for e in train for t, _ in e.gold)) == {"protein", "dna", "rna", "cell_line", "cell_type"}


@needs_data("sde_llm_tuning")
def test_maven_types_and_triggers():
    _, tr = load("maven-ed", "train")
    _, te = load("maven-ed", "test")
    c = Counter(t for e in tr + te for t, _ in e.gold)
    assert len(c) == 10 and sum(c.values()) == 147 and c["catastrophe"] == 23 and c["conquering"] == 7
    assert all(e.gold for e in tr + te)  # every sentence has an event
    assert not {e.fields["text"] for e in tr} & {e.fields["text"] for e in te}
