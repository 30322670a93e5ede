"""The prefix every prompt of an evaluation set shares (chat scaffold, system prompt, an instruction placed first,
fixed in-context demonstrations) is run once; each batch gets a copy of its key/value cache and only its own
tokens, left-padded after the prefix. Position ids count real tokens only, so every row reads as it would alone."""
from __future__ import annotations

import copy

import torch

from sdelab.models.device import device_of
from sdelab.models.tokenize import pad_batch


def common_prefix(seqs: list[list[int]]) -> int:
    """Length of the prefix every sequence shares, leaving each at least one token of its own."""
    if not seqs:
        return 0
    n = min(len(s) for s in seqs) - 1
    first = seqs[0]
    for s in seqs[1:]:
        k = 0
        while k < n and s[k] == first[k]:
            k += 1
        n = k
    return max(n, 0)


def decoder_of(lm):
    """The transformer body (no output layer) of a causal LM, LoRA-wrapped or not."""
    base = lm.get_base_model() if hasattr(lm, "get_base_model") else lm
    return base.get_decoder()


def prefix_cache(lm, prompts: list[list[int]], min_tokens: int):
    """(length, cache) of the prompts' shared prefix when it has at least `min_tokens` tokens, else (0, None).
    Call under the caller's autocast / inference mode."""
    n = common_prefix(prompts) if min_tokens else 0
    if n < max(min_tokens, 1):
        return 0, None
    ids = torch.tensor([prompts[0][:n]], device=device_of(lm))
    return n, decoder_of(lm)(input_ids=ids, use_cache=True).past_key_values


def batch_after_prefix(prompts: list[list[int]], n_pre: int, cache, pad_id: int):
    """(input_ids, attention_mask, cache copy or None) for a batch: the shared prefix, the padding, each prompt's
    own tokens; the cache copy is expanded to the batch."""
    ids, mask = pad_batch([p[n_pre:] for p in prompts], pad_id, left=True)
    if cache is None:
        return ids, mask, None
    ids = torch.cat([torch.tensor([prompts[0][:n_pre]]).expand(len(prompts), -1), ids], 1)
    mask = torch.cat([torch.ones(len(prompts), n_pre, dtype=mask.dtype), mask], 1)
    mine = copy.deepcopy(cache)
    mine.batch_repeat_interleave(len(prompts))
    return ids, mask, mine
