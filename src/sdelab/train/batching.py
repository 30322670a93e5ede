"""Length-grouped batches with dynamic padding: little compute spent on pad tokens, still a seeded random order."""
from __future__ import annotations

import random

import torch

from sdelab.models.tokenize import IGNORE, Encoded, pad_batch


def length_grouped_batches(lengths: list[int], batch_size: int, seed: int, group: bool = True,
                           mega: int = 32) -> list[list[int]]:
    """Shuffle, cut into mega-batches of `mega` batches, sort each by length, split, shuffle the batch order."""
    rng = random.Random(seed)
    idx = list(range(len(lengths)))
    rng.shuffle(idx)
    if not group:
        return [idx[i:i + batch_size] for i in range(0, len(idx), batch_size)]
    batches = []
    step = batch_size * mega
    for start in range(0, len(idx), step):
        chunk = sorted(idx[start:start + step], key=lambda i: -lengths[i])
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def collate(items: list[Encoded], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded input_ids / attention_mask / labels (labels -100 on padding)."""
    ids, mask = pad_batch([e.input_ids for e in items], pad_id)
    labels, _ = pad_batch([e.labels for e in items], IGNORE)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}
