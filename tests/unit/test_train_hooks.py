"""Full fine-tuning with the input embeddings frozen trains every other weight and leaves the embedding matrix
untouched; the on_update hook is called once per optimizer update with the batches done and the trained module."""
import random

import torch

from conftest import build_model
from sdelab.models.tokenize import Encoded
from sdelab.train import loop


def samples(n=12):
    rng = random.Random(0)
    out = []
    for _ in range(n):
        ids = [rng.randrange(5, 300) for _ in range(rng.randrange(6, 14))]
        out.append(Encoded(ids, [-100] * 3 + ids[3:], 0))
    return out


def test_freeze_embeddings_trains_the_rest(tiny_tokenizer):
    s = loop.TrainSettings(epochs=1, batch_size=4, lr=5e-3, precision="fp32", full=True, freeze_embeddings=True,
                           checkpoint_every=0)
    lm = loop.add_lora(build_model(tiny_tokenizer), s, seed=0)
    emb = lm.get_input_embeddings().weight
    before_emb = emb.detach().clone()
    others = {n: p.detach().clone() for n, p in lm.named_parameters() if p.requires_grad}
    assert not emb.requires_grad and others
    calls = []
    loop.train_generative(lm, samples(), s, 0, tiny_tokenizer.pad_token_id,
                          on_update=lambda step, stats, module: calls.append((step, stats.examples, type(module))))
    assert torch.equal(emb, before_emb)
    assert any(not torch.equal(p, others[n]) for n, p in lm.named_parameters() if n in others)
    assert [c[:2] for c in calls] == [(1, 4), (2, 8), (3, 12)]  # 12 samples, batches of 4, stats up to date
    assert all(c[2] is loop.CausalLMLoss for c in calls)
