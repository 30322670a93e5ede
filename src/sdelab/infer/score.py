"""Label scoring for closed label sets: every candidate response is scored in one forward pass per batch;
the label with the highest log-likelihood (response tokens + end-of-sequence) wins. No format errors possible."""
from __future__ import annotations

import torch
from tqdm.auto import tqdm

from sdelab.infer.generate import autocast
from sdelab.models.tokenize import pad_batch


@torch.inference_mode()
def score_candidates(lm, prompts: list[list[int]], candidates: list[list[int]], pad_id: int,
                     batch_size: int = 32, precision: str = "fp32", desc: str = "score") -> list[list[float]]:
    """Sum of log-probabilities of each candidate continuation after each prompt: [n_prompts][n_candidates]."""
    lm.eval()
    base = lm.get_base_model() if hasattr(lm, "get_base_model") else lm
    decoder, head = base.get_decoder(), base.get_output_embeddings()
    device = next(lm.parameters()).device
    seqs = [(p, c) for p in range(len(prompts)) for c in range(len(candidates))]
    seqs.sort(key=lambda pc: -(len(prompts[pc[0]]) + len(candidates[pc[1]])))
    scores = [[0.0] * len(candidates) for _ in prompts]
    per_batch = max(1, batch_size)
    bar = tqdm(total=len(seqs), desc=desc, unit="seq", dynamic_ncols=True, mininterval=1.0)
    for start in range(0, len(seqs), per_batch):
        chunk = seqs[start:start + per_batch]
        full = [prompts[p] + candidates[c] for p, c in chunk]
        ids, mask = pad_batch(full, pad_id)
        with autocast(precision):
            hidden = decoder(input_ids=ids.to(device), attention_mask=mask.to(device)).last_hidden_state
        for r, (p, c) in enumerate(chunk):
            lp, lc = len(prompts[p]), len(candidates[c])
            h = hidden[r, lp - 1: lp - 1 + lc]
            with autocast(precision):
                logits = head(h)
            logprobs = torch.log_softmax(logits.float(), dim=-1)
            tgt = torch.tensor(candidates[c], device=logprobs.device)
            scores[p][c] = float(logprobs.gather(1, tgt[:, None]).sum())
        bar.update(len(chunk))
    bar.close()
    return scores
