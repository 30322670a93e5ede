"""Prompt and output perplexity of rendered samples under a model: the mean token negative log-likelihood of the
prompt's own text (instruction, input, demonstrations; not the chat scaffolding) and of the gold response (with
its end-of-sequence token), each token predicted from everything before it."""
from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from sdelab.design.codec import Sample
from sdelab.infer.generate import autocast
from sdelab.models.tokenize import IGNORE, Formatter, encode_train, pad_batch, response_ids


def _masks(f: Formatter, sample: Sample) -> tuple[list[int], list[bool], list[bool]]:
    """ids, is-prompt-text and is-response per position."""
    mi = Sample(tuple(replace(s, trained=True) for s in sample.prompt), sample.response)
    enc = encode_train(f, mi)
    n_resp = len(response_ids(f, sample.response.text))
    labelled = [lab != IGNORE for lab in enc.labels]
    is_resp = [False] * (len(labelled) - n_resp) + [True] * n_resp
    is_prompt = [lab and not r for lab, r in zip(labelled, is_resp)]
    return enc.input_ids, is_prompt, is_resp


@torch.inference_mode()
def sample_nll(lm, f: Formatter, samples: list[Sample], pad_id: int, batch_size: int = 16,
               precision: str = "fp32") -> list[tuple[float, float]]:
    """(mean prompt-token NLL, mean response-token NLL) per sample."""
    lm.eval()
    device = next(lm.parameters()).device
    prepared = [_masks(f, s) for s in samples]
    out: list[tuple[float, float]] = []
    for start in tqdm(range(0, len(prepared), batch_size), desc="perplexity", unit="batch", mininterval=1.0):
        chunk = prepared[start:start + batch_size]
        ids, mask = pad_batch([x for x, _, _ in chunk], pad_id)
        with autocast(precision):
            logits = lm(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
        nll = F.cross_entropy(logits[:, :-1].float().transpose(1, 2), ids[:, 1:].to(device), reduction="none")
        for r, (x, is_p, is_r) in enumerate(chunk):
            tok = nll[r, : len(x) - 1].cpu()
            p = torch.tensor(is_p[1:], dtype=torch.bool)
            q = torch.tensor(is_r[1:], dtype=torch.bool)
            out.append((float(tok[p].mean()) if p.any() else float("nan"), float(tok[q].mean())))
    return out
