"""Every built-in task reads its real data from ../shared/data (skipped cleanly when it is absent)."""
from collections import Counter

import pytest

from sdelab.tasks import builtin_tasks, get_task

from conftest import DATA_ROOT, needs_data

pytestmark = pytest.mark.data  # needs ../shared/data (each test skips without it)

EXPECTED = {  # split sizes from the data sets' SOURCE.txt files
    ("lcqmc", "train"): 238_766, ("lcqmc", "dev"): 8_802,
    ("bq", "train"): 8_000, ("bq", "test"): 2_000,
    ("sst2", "train"): 6_920, ("sst2", "dev"): 872, ("sst2", "test"): 1_821,
    ("mrpc", "train"): 4_076, ("mrpc", "test"): 1_725,
    ("rte", "train"): 2_490, ("rte", "val"): 277,
    ("genft-sentiment", "train"): 2_000, ("genft-paraphrase", "paws"): 500,
    ("genft-nli", "multinli"): 492,  # 500 minus 8 rows labelled '-'
    ("genft-summary", "train"): 1_999,  # one empty input skipped
    ("genft-question", "tweetqa"): 480,  # 20 rows with an empty context or answer skipped
}
SHARED = [n for n in builtin_tasks() if n != "demo-reviews"]


@needs_data()
@pytest.mark.parametrize("name", SHARED)
def test_builtin_task_reads_every_split(name):
    task = get_task(name)
    for split in task.spec.splits:
        examples = task.load(split, DATA_ROOT)
        assert examples, f"{name}/{split} is empty"
        fam = task.spec.family
        if fam == "multi_aspect":
            labels = Counter(v for e in examples for v in e.gold.values())
        elif fam == "span_extraction":
            assert all(t in task.spec.targets and x in e.fields["text"] for e in examples for t, x in e.gold)
            labels = Counter()
        elif fam == "text_generation":
            labels = Counter()
        else:
            labels = Counter(e.label for e in examples)
        assert set(labels) <= set(task.label_names)
        assert all(all(v.strip() for v in e.fields.values()) for e in examples)
        if (name, split) in EXPECTED:
            assert len(examples) == EXPECTED[(name, split)]


@needs_data("lcqmc")
def test_lcqmc_label_balance_matches_source():
    dev = get_task("lcqmc").load("dev", DATA_ROOT)
    assert Counter(e.label for e in dev) == {"same": 4402, "different": 4400}
