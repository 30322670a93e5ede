from pathlib import Path

import pytest

from sdelab.errors import SdelabError
from sdelab.tasks import get_task, load_task_file, subset


def test_demo_task_is_bundled_with_id_and_ood_splits():
    t = get_task("demo-reviews")
    train = t.load("train", Path("/nonexistent"))  # bundled: needs no data root
    assert len(train) >= 200 and set(e.label for e in train) == {"positive", "negative", "neutral"}
    assert t.spec.splits["test_id"].domain == "in" and t.spec.splits["test_ood"].domain == "out"
    assert len(t.load("test_ood", Path("/nonexistent"))) >= 50


def test_unknown_task_lists_known_names():
    with pytest.raises(SdelabError, match=r"unknown task 'lcqm'.*did you mean 'lcqmc'.*demo-reviews"):
        get_task("lcqm")


def test_label_map_and_label_errors(tmp_path):
    (tmp_path / "d.tsv").write_text("a\tb\tlabel\nx\ty\t1\nx\ty\t0\nx\ty\t7\n")
    (tmp_path / "t.yaml").write_text("""name: t
family: pair_classification
language: zh
inputs: [text_a, text_b]
columns: {text_a: a, text_b: b}
labels: {same: 相同, different: 不同}
label_map: {"1": same, "0": different}
templates: [{name: c, instruction: "判断", input: "{text_a} {text_b}"}]
splits: {train: {path: d.tsv, rows: "0:2"}, all: {path: d.tsv}}
""")
    t = load_task_file(tmp_path / "t.yaml")
    assert [e.label for e in t.load("train", tmp_path)] == ["same", "different"]
    with pytest.raises(SdelabError, match=r"d.tsv:4: field 'label': label '7' is not in the task's label set"):
        t.load("all", tmp_path)


def test_empty_text_is_an_error(tmp_path, tiny_task_yaml):
    p = tiny_task_yaml.parent / "train.jsonl"
    p.write_text(p.read_text() + '{"text": "  ", "label": "positive"}\n')
    t = load_task_file(tiny_task_yaml)
    with pytest.raises(SdelabError, match=r"train.jsonl:\d+: field 'text': empty text"):
        t.load("train", tmp_path)


def test_task_yaml_unknown_key_says_where(tmp_path):
    (tmp_path / "t.yaml").write_text("name: t\nfamily: single_classification\nlanguag: en\n")
    with pytest.raises(SdelabError, match=r"t.yaml:3: field 'languag': unknown key 'languag' \(did you mean "
                                          r"'language'\?\)"):
        load_task_file(tmp_path / "t.yaml")


def test_subset_is_reproducible_and_checked(tiny_task_yaml):
    t = load_task_file(tiny_task_yaml)
    ex = t.load("train", Path("."))
    a, b, c = subset(ex, 10, 1), subset(ex, 10, 1), subset(ex, 10, 2)
    assert [e.id for e in a] == [e.id for e in b] and [e.id for e in a] != [e.id for e in c]
    with pytest.raises(SdelabError, match="larger than the data"):
        subset(ex, len(ex) + 1, 0)
