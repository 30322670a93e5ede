"""The training step's memory estimate (train/memory.py): calibrated by bench/train_memory.py (the constants
shipped are that file's fit), batches that would not fit are cut into chunks whose weighted losses give the
whole batch's update, and a sample that cannot fit is refused before training."""
import json
from pathlib import Path

import pytest
import torch

from conftest import build_model
from sdelab.errors import SdelabError
from sdelab.models.tokenize import Encoded
from sdelab.train import loop, memory
from test_train_speed import samples

BENCH = Path(__file__).resolve().parents[2] / "bench" / "results" / "train_memory.json"


def test_shipped_coefficients_are_the_benchmarks_fit():
    got = json.loads(BENCH.read_text())
    assert list(memory.COEFFICIENTS) == got["coefficients"]
    assert got["worst_relative_error"] < 0.15
    for r in got["rows"]:  # every measured step within the fit's error of the estimate
        est = memory.step_bytes(r["dims"], r["batch"], r["length"], r["attention"] == "eager")
        measured = (r["rss_peak_gib"] - r["rss_loaded_gib"]) * 2**30
        assert abs(est - measured) <= (got["worst_relative_error"] + 0.001) * measured, r


def test_estimate_grows_with_rows_and_length(tiny_tokenizer):
    d = memory.dimensions(loop.CausalLMLoss(build_model(tiny_tokenizer)))
    assert d["layers"] == 2 and d["hidden"] > 0 and d["heads"] > 0
    assert memory.step_bytes(d, 4, 100, True) > memory.step_bytes(d, 2, 100, True) > memory.step_bytes(d, 1, 100, True)
    assert memory.step_bytes(d, 1, 200, True) > memory.step_bytes(d, 1, 200, False)  # eager's score matrices


def test_no_budget_runs_every_batch_whole():
    items = samples()
    plan = [[0, 1, 2, 3], [4, 5, 6, 7]]
    dims = {"weight_bytes": 10, "trainable": 1, "layers": 2, "hidden": 8, "intermediate": 16, "heads": 2}
    chunks, summary = memory.chunked(plan, items, dims, False, None)
    assert [(c.step, c.indices, c.weight, c.last) for c in chunks] == [(1, plan[0], 1.0, True), (2, plan[1], 1.0, True)]
    assert summary["batches_split"] == 0


def test_a_batch_that_does_not_fit_runs_in_weighted_chunks():
    items = samples()
    plan = [[0, 1, 2, 3], [4, 5, 6, 7]]
    dims = {"weight_bytes": 0, "trainable": 1, "layers": 2, "hidden": 8, "intermediate": 16, "heads": 2}
    longest = max(len(e.input_ids) for e in items)
    budget = memory.step_bytes(dims, 2, longest, True) + 1  # two rows fit, four do not
    chunks, summary = memory.chunked(plan, items, dims, True, budget)
    assert summary["batches_split"] == 2 and summary["chunks"] == 4 and "would not fit" in summary["why"]
    for step in (1, 2):
        mine = [c for c in chunks if c.step == step]
        assert [len(c.indices) for c in mine] == [2, 2] and [c.last for c in mine] == [False, True]
        assert sum(c.weight for c in mine) == pytest.approx(1.0)
        labelled = [sum(memory.labelled(items[i]) for i in c.indices) for c in mine]
        assert [c.weight for c in mine] == pytest.approx([n / sum(labelled) for n in labelled])


def test_a_sample_that_cannot_fit_is_refused():
    items = samples()
    dims = {"weight_bytes": 0, "trainable": 1, "layers": 2, "hidden": 8, "intermediate": 16, "heads": 2}
    with pytest.raises(SdelabError, match="lower train.max_length"):
        memory.chunked([[0, 1]], items, dims, False, 1.0)


def test_labelled_counts_tokens_for_a_causal_lm_and_rows_for_a_head():
    assert memory.labelled(Encoded([1, 2, 3, 4], [-100, -100, 3, 4], 0)) == 2
    assert memory.labelled(loop.ClsItem([1, 2, 3], [1])) == 1


def test_chunked_training_learns_what_whole_batches_learn(tiny_tokenizer, monkeypatch):
    """The same seed, with every batch of 4 cut in two (weighted by labelled tokens): the same loss curve and
    the same trained weights, within rounding; the manifest's speed record says batches were split."""
    runs = []
    for split in (False, True):
        s = loop.TrainSettings(epochs=2, batch_size=4, lr=5e-3, precision="fp32", compile="off", log_every=1,
                               checkpoint_every=0)
        lm = loop.add_lora(build_model(tiny_tokenizer), s, seed=0)
        if split:
            d = memory.dimensions(loop.CausalLMLoss(lm))
            monkeypatch.setattr(loop, "budget", lambda m: memory.step_bytes(d, 2, 13, True) + 1)
        else:
            monkeypatch.setattr(loop, "budget", lambda m: None)
        st = loop.train_generative(lm, samples(), s, 0, tiny_tokenizer.pad_token_id)
        trained = {n: p.detach().clone() for n, p in lm.named_parameters() if p.requires_grad}
        runs.append(([p["loss"] for p in st.curve], trained, st))
    (c0, w0, s0), (c1, w1, s1) = runs
    assert s0.speed["memory"]["batches_split"] == 0 and s1.speed["memory"]["batches_split"] == 4
    assert c0 == pytest.approx(c1, abs=1e-5)
    assert s0.tokens == s1.tokens and s0.examples == s1.examples and s0.steps == s1.steps
    for n in w0:
        torch.testing.assert_close(w0[n], w1[n], atol=1e-5, rtol=1e-4)
