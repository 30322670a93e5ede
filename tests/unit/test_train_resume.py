"""A training run stopped part-way resumes from its checkpoint to exactly the result of an uninterrupted run, for
both paradigms; a checkpoint of another configuration is not resumed."""
import json
import random

import pytest
import torch

from conftest import build_model
from sdelab.models.tokenize import Encoded
from sdelab.train import loop


def samples(n=20, seed=0):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        ids = [rng.randrange(5, 300) for _ in range(rng.randrange(6, 20))]
        cut = len(ids) // 2
        out.append(Encoded(ids, [-100] * cut + ids[cut:], 0))
    return out


def settings(**kw):
    return loop.TrainSettings(epochs=2, batch_size=4, grad_accum=2, lr=5e-3, precision="fp32", checkpoint_every=0,
                              log_every=2, lora_dropout=0.1, **kw)


def trained(tok, s, log, checkpoint=None):
    lm = loop.add_lora(build_model(tok), s, seed=3)
    stats = loop.train_generative(lm, samples(), s, 3, tok.pad_token_id, log, checkpoint=checkpoint)
    return {n: p.detach().clone() for n, p in lm.named_parameters() if p.requires_grad}, stats


class Stop(Exception):
    pass


def stop_after(monkeypatch, saves):
    real, count = loop._save_checkpoint, {"n": 0}

    def save(*a, **kw):
        real(*a, **kw)
        count["n"] += 1
        if count["n"] == saves:
            raise Stop

    monkeypatch.setattr(loop, "_save_checkpoint", save)


def test_resumed_training_equals_uninterrupted(tmp_path, tiny_tokenizer, monkeypatch):
    s = settings()
    ref, ref_stats = trained(tiny_tokenizer, s, tmp_path / "ref.jsonl")
    ckpt = tmp_path / "ck" / "state.pt"
    with monkeypatch.context() as m:
        stop_after(m, 2)  # after the second optimizer step of five (10 batches, accumulation 2)
        with pytest.raises(Stop):
            trained(tiny_tokenizer, s, tmp_path / "log.jsonl", ckpt)
    assert torch.load(ckpt, weights_only=True)["step"] == 4
    got, stats = trained(tiny_tokenizer, s, tmp_path / "log.jsonl", ckpt)
    assert got.keys() == ref.keys()
    assert all(torch.equal(got[n], ref[n]) for n in ref)  # LoRA dropout included: the RNG state is restored
    assert (stats.steps, stats.tokens, stats.examples, stats.final_loss) == \
        (ref_stats.steps, ref_stats.tokens, ref_stats.examples, ref_stats.final_loss)
    strip = [{k: v for k, v in json.loads(x).items() if k != "seconds"} for x in
             (tmp_path / "log.jsonl").read_text().splitlines()]
    want = [{k: v for k, v in json.loads(x).items() if k != "seconds"} for x in
            (tmp_path / "ref.jsonl").read_text().splitlines()]
    assert strip == want  # the loss curve is whole, with no point twice
    # the final checkpoint holds the trained state: "resuming" it trains nothing and gives the same weights
    again, _ = trained(tiny_tokenizer, s, tmp_path / "log2.jsonl", ckpt)
    assert all(torch.equal(again[n], ref[n]) for n in ref)


def test_checkpoint_of_other_settings_is_ignored(tmp_path, tiny_tokenizer, monkeypatch):
    ckpt = tmp_path / "state.pt"
    with monkeypatch.context() as m:
        stop_after(m, 1)
        with pytest.raises(Stop):
            trained(tiny_tokenizer, settings(), None, ckpt)
    other = loop.TrainSettings(**{**settings().__dict__, "lr": 1e-3})
    got, stats = trained(tiny_tokenizer, other, None, ckpt)
    fresh, fresh_stats = trained(tiny_tokenizer, other, None)
    assert all(torch.equal(got[n], fresh[n]) for n in fresh) and stats.steps == fresh_stats.steps == 10


def test_discriminative_resume_equals_uninterrupted(tmp_path, tiny_tokenizer, monkeypatch):
    from transformers import LlamaForSequenceClassification
    torch.manual_seed(0)
    cfg = build_model(tiny_tokenizer).config
    cfg.num_labels, cfg.pad_token_id = 3, tiny_tokenizer.pad_token_id
    base = LlamaForSequenceClassification(cfg)
    items = [loop.ClsItem(e.input_ids, [i % 3]) for i, e in enumerate(samples())]
    s = settings()

    def run(checkpoint=None):
        import copy
        model = loop.add_lora(copy.deepcopy(base), s, 3, task_type="SEQ_CLS")
        loop.train_discriminative(model, items, 1, s, 3, tiny_tokenizer.pad_token_id, checkpoint=checkpoint)
        return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}

    ref = run()
    with monkeypatch.context() as m:
        stop_after(m, 3)
        with pytest.raises(Stop):
            run(tmp_path / "state.pt")
    got = run(tmp_path / "state.pt")
    assert all(torch.equal(got[n], ref[n]) for n in ref)
