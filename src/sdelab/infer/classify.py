"""Discriminative prediction: one forward pass per batch through the classification head; the class with the
highest logit wins, per head (one head per aspect for multi-aspect sentiment). No format errors possible."""
from __future__ import annotations

import torch
from tqdm.auto import tqdm

from sdelab.infer.generate import autocast
from sdelab.models.tokenize import pad_batch


@torch.inference_mode()
def classify(model, prompts: list[list[int]], heads: int, pad_id: int, batch_size: int = 32,
             precision: str = "fp32", desc: str = "classify") -> list[list[list[float]]]:
    """Logits [n_prompts][heads][classes]."""
    model.eval()
    device = next(model.parameters()).device
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    out: list = [None] * len(prompts)
    bar = tqdm(total=len(prompts), desc=desc, unit="ex", dynamic_ncols=True, mininterval=1.0)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        ids, mask = pad_batch([prompts[i] for i in idx], pad_id)
        with autocast(precision):
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()
        logits = logits.view(len(idx), heads, -1).cpu()
        for r, i in enumerate(idx):
            out[i] = logits[r].tolist()
        bar.update(len(idx))
    bar.close()
    return out
