"""Batched greedy generation: prompts sorted by length, stop at end-of-sequence or a stop string.

The prefix every prompt shares is run once (see infer/prefix.py). Each row's smallest gap between its two best
next tokens is tracked; a row with a near tie (infer/ties.py) is generated again alone, the one-at-a-time path.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, replace

import torch
from tqdm.auto import tqdm

from sdelab.infer.prefix import batch_after_prefix, prefix_cache
from sdelab.infer.ties import narrowest
from sdelab.models.device import autocast, device_of


@dataclass
class Generation:
    text: str
    finished: bool  # ended with end-of-sequence or a stop string (False: hit max_new_tokens)
    new_tokens: int
    alone: bool = False  # generated again on its own: a near-tie in the batch


@torch.inference_mode()
def generate(lm, tokenizer, prompts: list[list[int]], max_new_tokens: int, batch_size: int = 32,
             stop: tuple[str, ...] = (), precision: str = "fp32", desc: str = "generate",
             share_prefix: int = 16, sampling: tuple[float, float, int] | None = None) -> list[Generation]:
    """Greedy continuations of `prompts` (or sampled: `sampling` = (temperature, top_p, seed)); a common prefix
    of at least `share_prefix` tokens is computed once (0: never)."""
    lm.eval()
    device = device_of(lm)
    if sampling is not None:
        torch.manual_seed(sampling[2])
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    out: list[Generation | None] = [None] * len(prompts)
    with autocast(precision, device):
        n_pre, cache = prefix_cache(lm, prompts, share_prefix)
    bar = tqdm(total=len(prompts), desc=desc, unit="ex", dynamic_ncols=True, mininterval=1.0)
    with contiguous_output_layer(lm):
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            gens, gaps = _generate_batch(lm, tokenizer, [prompts[i] for i in idx], n_pre, cache, max_new_tokens,
                                         stop, precision, sampling)
            if sampling is None and len(idx) > 1:
                for r in narrowest(gaps, precision):
                    gens[r] = replace(_generate_batch(lm, tokenizer, [prompts[idx[r]]], 0, None, max_new_tokens,
                                                      stop, precision)[0][0], alone=True)
            for i, g in zip(idx, gens):
                out[i] = g
            bar.update(len(idx))
    bar.close()
    return out  # type: ignore[return-value]


@contextmanager
def contiguous_output_layer(lm):
    """transformers hands the output layer a strided slice (the last position) after the prompt pass; torch's
    matmul then copies the whole vocabulary matrix once per row when that weight needs no gradient (a frozen or
    merged model): 1.5 s per batch of 32 for SmolLM2 here. A contiguous input takes the plain matrix product."""
    hook = lm.get_output_embeddings().register_forward_pre_hook(lambda _m, args: (args[0].contiguous(), *args[1:]))
    try:
        yield
    finally:
        hook.remove()


class _Gaps:
    """A logits processor that leaves the scores alone and keeps each unfinished row's smallest top-two gap."""

    def __init__(self, rows: int, eos: int):
        self.gap = torch.full((rows,), float("inf"))
        self.done = torch.zeros(rows, dtype=torch.bool)
        self.eos = eos

    def __call__(self, input_ids, scores):
        if input_ids.shape[1] and self.eos is not None:
            self.done |= input_ids[:, -1].cpu() == self.eos
        top = scores.float().topk(2, -1).values.cpu()
        gap = torch.where(self.done, float("inf"), top[:, 0] - top[:, 1])
        self.gap = torch.minimum(self.gap, gap)
        return scores


def _generate_batch(lm, tokenizer, prompts: list[list[int]], n_pre: int, cache, max_new_tokens: int,
                    stop: tuple[str, ...], precision: str, sampling=None) -> tuple[list[Generation], list[float]]:
    """The batch's generations and each row's smallest top-two logit gap over its own tokens."""
    from transformers import LogitsProcessorList
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    ids, mask, mine = batch_after_prefix(prompts, n_pre, cache, pad)
    kwargs = {"past_key_values": mine} if mine is not None else {}
    decode = {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
    if sampling is not None:
        decode = {"do_sample": True, "temperature": sampling[0], "top_p": sampling[1], "top_k": 0}
    n = ids.shape[1]
    gaps = _Gaps(len(prompts), eos)
    device = device_of(lm)
    with autocast(precision, device):
        gen = lm.generate(input_ids=ids.to(device), attention_mask=mask.to(device),
                          max_new_tokens=max_new_tokens, eos_token_id=eos, pad_token_id=pad, use_cache=True,
                          logits_processor=LogitsProcessorList([gaps]), **decode, **kwargs)
    out = []
    for r in range(len(prompts)):
        new = gen[r, n:].tolist()
        finished = eos in new
        if finished:
            new = new[: new.index(eos)]
        text = tokenizer.decode(new, skip_special_tokens=True)
        for s in stop:
            if s and s in text:
                text, finished = text[: text.index(s)], True
        out.append(Generation(text, finished, len(new)))
    return out, gaps.gap.tolist()
