"""The training loop's speed plan (train/speed.py): when it compiles and switches attention, that it records the
decision, that the model evaluates afterwards exactly as loaded, and that compiling is not part of a cell's id."""
import random

import pytest
import torch

from conftest import build_model
from sdelab.models.tokenize import Encoded
from sdelab.study.grid import cell_id
from sdelab.train import loop, speed


def samples(n=8, lo=6, hi=14):
    rng = random.Random(0)
    out = []
    for _ in range(n):
        ids = [rng.randrange(5, 300) for _ in range(rng.randrange(lo, hi))]
        out.append(Encoded(ids, [-100] * 3 + ids[3:], 0))
    return out


def wrapped(tok):
    lm = build_model(tok)
    lm.set_attn_implementation("sdpa")
    return loop.CausalLMLoss(lm)


def test_auto_compiles_decoders_only_from_the_threshold(tiny_tokenizer):
    m = wrapped(tiny_tokenizer)
    assert len(speed.repeated_blocks(m)) == 2
    small = speed.plan_speed(m, "auto", speed.COMPILE_MIN_TOKENS - 1, 40)
    big = speed.plan_speed(m, "auto", speed.COMPILE_MIN_TOKENS, 40)
    assert not small.compile and "would not pay" in small.why
    assert big.compile and big.attention == "eager"
    assert not speed.plan_speed(m, "off", 10**9, 40).compile
    assert speed.plan_speed(m, "on", 1, 40).compile
    long = speed.plan_speed(m, "auto", 10**6, speed.EAGER_MAX_TOKENS + 1)
    assert long.attention is None  # long samples keep SDPA (faster there, and no score matrices in memory)


def test_auto_leaves_encoders_uncompiled():
    from transformers import BertConfig, BertModel
    enc = BertModel(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                               intermediate_size=32))
    p = speed.plan_speed(enc, "auto", 10**9, 40)
    assert not p.compile and "not a decoder" in p.why


def test_applied_restores_the_model(tiny_tokenizer):
    m = wrapped(tiny_tokenizer)
    blocks = speed.repeated_blocks(m)
    with speed.applied(m, speed.SpeedPlan(True, "eager", "test")):
        assert m.lm.config._attn_implementation == "eager"
        assert all("forward" in vars(b) for b in blocks)
    assert m.lm.config._attn_implementation == "sdpa"
    assert not any("forward" in vars(b) for b in blocks)


@pytest.mark.slow
def test_compiled_training_matches_uncompiled(tiny_tokenizer):
    """Compiling changes speed, not what is learned: the same seed gives the same loss curve within rounding;
    the manifest's speed record says what ran."""
    curves, records = [], []
    for mode in ("off", "on"):
        s = loop.TrainSettings(epochs=2, batch_size=4, lr=5e-3, precision="fp32", compile=mode, log_every=1,
                               checkpoint_every=0)
        lm = loop.add_lora(build_model(tiny_tokenizer), s, seed=0)
        st = loop.train_generative(lm, samples(), s, 0, tiny_tokenizer.pad_token_id)
        curves.append([p["loss"] for p in st.curve])
        records.append(st.speed)
        assert not any("forward" in vars(b) for b in speed.repeated_blocks(lm))
    assert records[0]["compile"] is False and records[1]["compile"] is True
    assert records[1]["first_step_s"] > 0
    assert curves[0] == pytest.approx(curves[1], abs=1e-4)


def test_compile_is_not_part_of_the_cell_id():
    base = {"task": "t", "train": {"epochs": 1, "compile": "auto"}}
    assert cell_id(base) == cell_id({**base, "train": {"epochs": 1, "compile": "off"}})
    assert cell_id(base) == cell_id({**base, "train": {"epochs": 1}})
    assert cell_id(base) != cell_id({**base, "train": {"epochs": 2, "compile": "auto"}})
