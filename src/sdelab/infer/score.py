"""Label scoring for closed label sets: the label with the highest log-likelihood (response tokens +
end-of-sequence) wins. No format errors possible.

Each prompt is run once: its last position gives every candidate's first token, and the rest of the candidates
(all of them at once, the prompt's key/value cache repeated) read that cache instead of re-reading the prompt.
The prefix all prompts share is run once for the whole set (infer/prefix.py). Prompts are left-padded with
position ids counted over real tokens, so a batch scores as its items alone do, up to rounding: a prompt whose
two best labels are a near tie (infer/ties.py) is scored again alone, one
forward pass over prompt + label per candidate (the papers' one-at-a-time path).
"""
from __future__ import annotations

import torch
from tqdm.auto import tqdm

from sdelab.infer.prefix import batch_after_prefix, decoder_of, prefix_cache
from sdelab.infer.ties import narrowest
from sdelab.models.device import autocast, device_of
from sdelab.models.tokenize import pad_batch


@torch.inference_mode()
def score_candidates(lm, prompts: list[list[int]], candidates: list[list[int]], pad_id: int,
                     batch_size: int = 32, precision: str = "fp32", desc: str = "score",
                     share_prefix: int = 16) -> list[list[float]]:
    """Sum of log-probabilities of each candidate continuation after each prompt: [n_prompts][n_candidates]."""
    lm.eval()
    decoder, head = decoder_of(lm), lm.get_output_embeddings()
    device = device_of(lm)
    n_c = len(candidates)
    width = max(len(c) for c in candidates)
    # every candidate but its last token, right-padded (causal attention: padding after a token is unseen);
    # the output after token t predicts token t+1
    rest, _ = pad_batch([c[:-1] for c in candidates], pad_id)
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    scores = [[0.0] * n_c for _ in prompts]
    with autocast(precision, device):
        n_pre, shared = prefix_cache(lm, prompts, share_prefix)
    bar = tqdm(total=len(prompts), desc=desc, unit="ex", dynamic_ncols=True, mininterval=1.0)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        ids, mask, cache = batch_after_prefix([prompts[i] for i in idx], n_pre, shared, pad_id)
        ids, mask = ids.to(device), mask.to(device)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        with autocast(precision, device):
            out = decoder(input_ids=ids[:, n_pre:], attention_mask=mask, position_ids=pos[:, n_pre:],
                          past_key_values=cache, use_cache=width > 1)
            first = torch.log_softmax(head(out.last_hidden_state[:, -1]).float(), -1)  # [b, vocab]
        total = torch.stack([first[:, c[0]] for c in candidates], 1)  # [b, n_c]
        if width > 1:
            b = len(idx)
            cache = out.past_key_values
            cache.batch_repeat_interleave(n_c)  # row r*n_c + j: prompt r, candidate j
            r_ids = rest.to(device).repeat(b, 1)
            full_mask = torch.cat([mask.repeat_interleave(n_c, 0), torch.ones_like(r_ids)], 1)
            r_pos = pos[:, -1:].repeat_interleave(n_c, 0) + 1 + torch.arange(r_ids.shape[1], device=device)
            with autocast(precision, device):
                hidden = decoder(input_ids=r_ids, attention_mask=full_mask,
                                 position_ids=r_pos, past_key_values=cache, use_cache=True).last_hidden_state
                logp = torch.log_softmax(head(hidden).float(), -1)
            for j, c in enumerate(candidates):
                if len(c) > 1:
                    tgt = torch.tensor(c[1:], device=device)
                    rows = logp[j::n_c, : len(c) - 1]  # [b, len-1, vocab]
                    total[:, j] += rows.gather(2, tgt.expand(b, -1)[..., None]).squeeze(-1).sum(1)
        for r, i in enumerate(idx):
            scores[i] = [float(x) for x in total[r]]
        if n_c > 1 and len(idx) > 1:
            top = total.topk(2, -1).values
            for r in narrowest((top[:, 0] - top[:, 1]).tolist(), precision):
                scores[idx[r]] = _alone(lm, prompts[idx[r]], candidates, precision)
        bar.update(len(idx))
    bar.close()
    return scores


def _alone(lm, prompt: list[int], candidates: list[list[int]], precision: str) -> list[float]:
    """One prompt's candidates scored one forward pass each over prompt + candidate, no cache, no padding."""
    out = []
    device = device_of(lm)
    for c in candidates:
        with autocast(precision, device):
            logits = lm(input_ids=torch.tensor([prompt + c], device=device)).logits[0, len(prompt) - 1:-1]
        lp = torch.log_softmax(logits.float(), -1).gather(1, torch.tensor(c, device=device)[:, None]).sum()
        out.append(float(lp))
    return out
