"""Batched generation and label scoring agree with the one-at-a-time / direct computations."""
import torch

from sdelab.infer import generate, score_candidates

from conftest import build_model


def test_batched_generation_equals_one_at_a_time(tiny_tokenizer):
    lm = build_model(tiny_tokenizer, seed=3).eval()
    tok = tiny_tokenizer
    prompts = [tok(t)["input_ids"] for t in ["the battery lasts", "Review: the food was cold and", "no",
                                            "判断下面两个句子"]]
    batched = generate(lm, tok, prompts, max_new_tokens=6, batch_size=4)
    single = [generate(lm, tok, [p], max_new_tokens=6, batch_size=1)[0] for p in prompts]
    assert [g.text for g in batched] == [g.text for g in single]
    ref = []
    for p in prompts:  # plain transformers greedy, no padding
        out = lm.generate(torch.tensor([p]), max_new_tokens=6, do_sample=False,
                          eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
        new = out[0, len(p):].tolist()
        new = new[: new.index(tok.eos_token_id)] if tok.eos_token_id in new else new
        ref.append(tok.decode(new, skip_special_tokens=True))
    assert [g.text for g in batched] == ref


def test_label_scores_match_direct_log_likelihood(tiny_tokenizer):
    lm = build_model(tiny_tokenizer, seed=4).eval()
    tok = tiny_tokenizer
    prompts = [tok(t)["input_ids"] for t in ["Review: great sound", "Review: the room was ok, nothing special"]]
    cands = [tok("positive")["input_ids"] + [tok.eos_token_id], tok("neutral")["input_ids"] + [tok.eos_token_id]]
    got = score_candidates(lm, prompts, cands, tok.pad_token_id, batch_size=3)
    for i, p in enumerate(prompts):
        for j, c in enumerate(cands):
            with torch.no_grad():
                logits = lm(torch.tensor([p + c])).logits[0].float()
            lp = torch.log_softmax(logits, -1)
            direct = sum(float(lp[len(p) - 1 + k, t]) for k, t in enumerate(c))
            assert abs(got[i][j] - direct) < 1e-4
