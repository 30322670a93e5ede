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
    prompts = [tok(t)["input_ids"] for t in ["Review: great sound", "Review: the room was ok, nothing special",
                                            "ok"]]
    # candidates of different lengths, one of a single token: the prompt cache serves all of them at once
    cands = [tok("positive")["input_ids"] + [tok.eos_token_id], tok("neutral")["input_ids"] + [tok.eos_token_id],
             [tok.eos_token_id]]
    assert len({len(c) for c in cands}) == 3
    got = score_candidates(lm, prompts, cands, tok.pad_token_id, batch_size=3)
    alone = score_candidates(lm, prompts, cands, tok.pad_token_id, batch_size=1)
    assert all(abs(a - b) < 1e-5 for r, s in zip(got, alone) for a, b in zip(r, s))
    for i, p in enumerate(prompts):
        for j, c in enumerate(cands):
            with torch.no_grad():
                logits = lm(torch.tensor([p + c])).logits[0].float()
            lp = torch.log_softmax(logits, -1)
            direct = sum(float(lp[len(p) - 1 + k, t]) for k, t in enumerate(c))
            assert abs(got[i][j] - direct) < 1e-4


def test_shared_prefix_generation_equals_plain_generation(tiny_tokenizer):
    lm = build_model(tiny_tokenizer, seed=5).eval()
    tok = tiny_tokenizer
    head = "Classify the sentiment of the review as positive, negative or neutral. Review: "
    prompts = [tok(head + t)["input_ids"] for t in ["great sound", "the room was ok, nothing special", "no",
                                                   "判断下面两个句子"]]
    from sdelab.infer.prefix import common_prefix
    assert common_prefix(prompts) >= 16  # the shared-prefix path is the one under test
    shared = generate(lm, tok, prompts, max_new_tokens=6, batch_size=3)
    plain = generate(lm, tok, prompts, max_new_tokens=6, batch_size=3, share_prefix=0)
    assert [g.text for g in shared] == [g.text for g in plain]
    for p, g in zip(prompts, shared):
        out = lm.generate(torch.tensor([p]), max_new_tokens=6, do_sample=False,
                          eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
        new = out[0, len(p):].tolist()
        new = new[: new.index(tok.eos_token_id)] if tok.eos_token_id in new else new
        assert g.text == tok.decode(new, skip_special_tokens=True)
        assert g.new_tokens == len(new) or g.finished


def test_common_prefix_leaves_each_prompt_a_token():
    from sdelab.infer.prefix import common_prefix
    assert common_prefix([[1, 2, 3], [1, 2, 3]]) == 2
    assert common_prefix([[1, 2, 3, 4], [1, 2, 5]]) == 2
    assert common_prefix([[7], [7, 8]]) == 0
    assert common_prefix([]) == 0


def test_label_scores_with_a_shared_prefix_match_direct_log_likelihood(tiny_tokenizer):
    lm = build_model(tiny_tokenizer, seed=6).eval()
    tok = tiny_tokenizer
    head = "Classify the sentiment of the review as positive, negative or neutral. Review: "
    prompts = [tok(head + t)["input_ids"] for t in ["great sound", "the room was ok, nothing special", "no"]]
    from sdelab.infer.prefix import common_prefix
    assert common_prefix(prompts) >= 16
    cands = [tok("positive")["input_ids"] + [tok.eos_token_id], [tok.eos_token_id]]
    got = score_candidates(lm, prompts, cands, tok.pad_token_id, batch_size=2)
    plain = score_candidates(lm, prompts, cands, tok.pad_token_id, batch_size=2, share_prefix=0)
    for i, p in enumerate(prompts):
        with torch.no_grad():
            direct = [float(torch.log_softmax(lm(torch.tensor([p + c])).logits[0].float(), -1)[
                torch.arange(len(p) - 1, len(p) - 1 + len(c)), torch.tensor(c)].sum()) for c in cands]
        assert all(abs(a - b) < 1e-4 for a, b in zip(got[i], direct))
        assert all(abs(a - b) < 1e-4 for a, b in zip(plain[i], direct))


def test_head_logits_with_a_shared_prefix_match_a_whole_prompt_pass(tiny_tokenizer):
    # the prefix path reads the head at each left-padded row's last position; transformers' own pass pools the last
    # non-pad token of a right-padded batch: the same logits, one prompt at a time or in a batch
    from transformers import LlamaForSequenceClassification

    from sdelab.infer.classify import classify
    from sdelab.infer.prefix import common_prefix
    tok = tiny_tokenizer
    cfg = build_model(tok).config
    cfg.num_labels = 6  # two heads of three classes
    torch.manual_seed(7)
    model = LlamaForSequenceClassification(cfg).eval()
    head = "Classify the sentiment of the review as positive, negative or neutral. Review: "
    prompts = [tok(head + t)["input_ids"] for t in ["great sound", "the room was ok, nothing special", "no",
                                                   "判断下面两个句子"]]
    assert common_prefix(prompts) >= 16  # the shared-prefix path is the one under test
    shared = torch.tensor(classify(model, prompts, 2, tok.pad_token_id, batch_size=3))
    whole = torch.tensor(classify(model, prompts, 2, tok.pad_token_id, batch_size=3, share_prefix=0))
    alone = torch.stack([model(input_ids=torch.tensor([p])).logits[0].view(2, 3).detach() for p in prompts])
    assert shared.shape == (4, 2, 3)
    assert torch.allclose(shared, whole, atol=1e-4) and torch.allclose(shared, alone, atol=1e-4)


def test_near_ties_are_picked_narrowest_first_and_capped():
    from sdelab.infer.ties import NEAR_TIE, narrowest
    gaps = [5.0, 0.01, 0.1, float("inf"), 0.0, 0.4, 9.0, 0.12]
    assert narrowest(gaps, "bf16") == [4, 1]  # 8 rows: at most a quarter, the narrowest gaps first
    assert narrowest([0.1, 2.0], "bf16") == [0]  # a batch of two still gets one
    assert narrowest([0.125, 0.3], "bf16") == []  # one bf16 step of a logit apart is not a tie
    assert narrowest(gaps, "fp32") == [4]  # fp32 rounding is far smaller: only the exact tie
    assert NEAR_TIE["fp32"] < NEAR_TIE["bf16"]


def test_rows_with_a_near_tie_are_generated_again_alone(tiny_tokenizer, monkeypatch):
    """With every gap counted as a near tie, the capped share of each batch is redone alone, and the texts are
    the one-at-a-time texts all the same."""
    from sdelab.infer import ties
    lm = build_model(tiny_tokenizer, seed=3).eval()
    tok = tiny_tokenizer
    prompts = [tok(t)["input_ids"] for t in ["the battery lasts", "Review: the food was cold and", "no",
                                            "判断下面两个句子"]]
    plain = generate(lm, tok, prompts, max_new_tokens=6, batch_size=4)
    monkeypatch.setitem(ties.NEAR_TIE, "fp32", float("inf"))
    redone = generate(lm, tok, prompts, max_new_tokens=6, batch_size=4)
    assert sum(g.alone for g in redone) == 1 and not any(g.alone for g in plain)
    assert [g.text for g in redone] == [g.text for g in plain]
    scores = score_candidates(lm, prompts, [[5, tok.eos_token_id], [9, tok.eos_token_id]], tok.pad_token_id, 4)
    monkeypatch.setitem(ties.NEAR_TIE, "fp32", 1e-3)
    again = score_candidates(lm, prompts, [[5, tok.eos_token_id], [9, tok.eos_token_id]], tok.pad_token_id, 4)
    assert all(abs(a - b) < 1e-4 for r, s in zip(scores, again) for a, b in zip(r, s))
