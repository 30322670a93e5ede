"""Batched greedy generation: prompts sorted by length, left padding, stop at end-of-sequence or a stop string."""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from sdelab.models.tokenize import pad_batch


@dataclass
class Generation:
    text: str
    finished: bool  # ended with end-of-sequence or a stop string (False: hit max_new_tokens)
    new_tokens: int


def autocast(precision: str):
    if precision == "bf16":
        return torch.autocast(device_type="cuda" if torch.cuda.is_available() else "cpu", dtype=torch.bfloat16)
    return nullcontext()


@torch.inference_mode()
def generate(lm, tokenizer, prompts: list[list[int]], max_new_tokens: int, batch_size: int = 32,
             stop: tuple[str, ...] = (), precision: str = "fp32", desc: str = "generate") -> list[Generation]:
    lm.eval()
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    device = next(lm.parameters()).device
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    out: list[Generation | None] = [None] * len(prompts)
    bar = tqdm(total=len(prompts), desc=desc, unit="ex", dynamic_ncols=True, mininterval=1.0)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        ids, mask = pad_batch([prompts[i] for i in idx], pad, left=True)
        n = ids.shape[1]
        with autocast(precision):
            gen = lm.generate(input_ids=ids.to(device), attention_mask=mask.to(device), do_sample=False,
                              max_new_tokens=max_new_tokens, eos_token_id=eos, pad_token_id=pad,
                              use_cache=True, temperature=None, top_p=None, top_k=None)
        for r, i in enumerate(idx):
            new = gen[r, n:].tolist()
            finished = eos in new
            if finished:
                new = new[: new.index(eos)]
            text = tokenizer.decode(new, skip_special_tokens=True)
            for s in stop:
                if s and s in text:
                    text, finished = text[: text.index(s)], True
            out[i] = Generation(text, finished, len(new))
        bar.update(len(idx))
    bar.close()
    return out  # type: ignore[return-value]
