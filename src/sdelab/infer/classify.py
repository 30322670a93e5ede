"""Discriminative prediction: one forward pass per batch through the classification head; the class with the
highest logit wins, per head (one head per aspect for multi-aspect sentiment). No format errors possible.

For a decoder LLM with a head on its last token (transformers' *ForSequenceClassification), the prefix all prompts
share is run once and each batch is left-padded after it (infer/prefix.py), so the head reads the last position of
every row: the same logits as a whole-prompt pass, without re-reading the chat scaffold and instruction of every
prompt. An encoder (BERT-like: no causal cache) and `share_prefix=0` take the whole-prompt pass.
"""
from __future__ import annotations

import torch
from tqdm.auto import tqdm

from sdelab.infer.prefix import batch_after_prefix, decoder_of, prefix_cache
from sdelab.models.device import autocast, device_of
from sdelab.models.tokenize import pad_batch


@torch.inference_mode()
def classify(model, prompts: list[list[int]], heads: int, pad_id: int, batch_size: int = 32,
             precision: str = "fp32", desc: str = "classify", share_prefix: int = 16) -> list[list[list[float]]]:
    """Logits [n_prompts][heads][classes]."""
    model.eval()
    device = device_of(model)
    head = getattr(model, "score", None)  # the last-token head of a decoder LLM; encoders name theirs classifier
    body = decoder_of(model) if head is not None and share_prefix > 0 else None
    n_pre, shared = 0, None
    if body is not None:
        with autocast(precision, device):
            n_pre, shared = prefix_cache(model, prompts, share_prefix)
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    out: list = [None] * len(prompts)
    bar = tqdm(total=len(prompts), desc=desc, unit="ex", dynamic_ncols=True, mininterval=1.0)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        batch = [prompts[i] for i in idx]
        with autocast(precision, device):
            if body is not None:
                ids, mask, cache = batch_after_prefix(batch, n_pre, shared, pad_id)
                ids, mask = ids.to(device), mask.to(device)
                pos = (mask.cumsum(-1) - 1).clamp(min=0)  # real tokens only: a row reads as it would alone
                hidden = body(input_ids=ids[:, n_pre:], attention_mask=mask, position_ids=pos[:, n_pre:],
                              past_key_values=cache, use_cache=False).last_hidden_state
                logits = head(hidden[:, -1]).float()
            else:
                ids, mask = pad_batch(batch, pad_id)
                logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()
        logits = logits.view(len(idx), heads, -1).cpu()
        for r, i in enumerate(idx):
            out[i] = logits[r].tolist()
        bar.update(len(idx))
    bar.close()
    return out
