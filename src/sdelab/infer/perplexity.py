"""Prompt and output perplexity of rendered samples under a model: the mean token negative log-likelihood of the
prompt's own text (instruction, input, demonstrations; not the chat scaffolding) and of the gold response (with
its end-of-sequence token), each token predicted from everything before it."""
from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from sdelab.design.sample import Sample
from sdelab.models.device import autocast, device_of
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
    """(mean prompt-token NLL, mean response-token NLL) per sample.

    The log-softmax runs one row at a time: over a whole batch's logits it made fp32 copies of [batch, length,
    vocab] (16 x 640 x 152k for Qwen2.5: 6 GB each) and ran a 24 GB machine out of memory. The logits themselves
    are still computed for the whole batch, in the autocast precision, so the numbers are those of a plain forward
    pass."""
    lm.eval()
    device = device_of(lm)
    prepared = [_masks(f, s) for s in samples]
    out: list[tuple[float, float]] = []
    for start in tqdm(range(0, len(prepared), batch_size), desc="perplexity", unit="batch", mininterval=1.0):
        chunk = prepared[start:start + batch_size]
        ids, mask = pad_batch([x for x, _, _ in chunk], pad_id)
        ids = ids.to(device)
        with autocast(precision, device):
            logits = lm(input_ids=ids, attention_mask=mask.to(device)).logits
        for r, (x, is_p, is_r) in enumerate(chunk):
            n = len(x) - 1  # position t predicts token t+1
            # ([1, vocab, n] layout: the kernel the batched version used, so the numbers match it exactly; the
            # [n, vocab] kernel differs from it by up to 1e-3 in a token NLL on CPU)
            tok = F.cross_entropy(logits[r:r + 1, :n].float().transpose(1, 2), ids[r:r + 1, 1:n + 1],
                                  reduction="none")[0].cpu()
            p = torch.tensor(is_p[1:], dtype=torch.bool)
            q = torch.tensor(is_r[1:], dtype=torch.bool)
            out.append((float(tok[p].mean()) if p.any() else float("nan"), float(tok[q].mean())))
        del logits
    return out
