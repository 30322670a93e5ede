"""Samples (segments) -> token ids and labels, in plain text or the model's chat template.

Each segment is tokenized on its own and the ids are concatenated, so the trained tokens are exactly the
response plus the end-of-sequence token, and an evaluation prompt is exactly the prefix seen in training.
Chat-template scaffolding (role markers, default system prompt) is found by rendering the template around
sentinels, and is never trained on.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from sdelab.design.sample import Sample, Segment
from sdelab.errors import SdelabError

IGNORE = -100
PromptFormat = Literal["chat", "plain"]
_U, _A = "\ue000USER\ue000", "\ue000ASSISTANT\ue000"


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]
    truncated: int  # input tokens cut to fit max_length


@dataclass
class Formatter:
    tokenizer: object
    fmt: PromptFormat
    max_length: int
    pre: list[int] = field(default_factory=list)  # before the prompt (BOS, system turn, user role marker)
    gen: list[int] = field(default_factory=list)  # between prompt and response (assistant role marker)
    eos_id: int = 0
    _memo: dict = field(default_factory=dict, repr=False)

    def ids(self, text: str) -> list[int]:
        if text not in self._memo:
            if len(self._memo) > 50_000:
                self._memo.clear()
            self._memo[text] = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return self._memo[text]


def make_formatter(tokenizer, fmt: PromptFormat = "chat", max_length: int = 512,
                   system: str | None = None) -> Formatter:
    eos = tokenizer.eos_token_id
    if eos is None:
        raise SdelabError("the tokenizer has no end-of-sequence token; the model cannot learn where to stop")
    f = Formatter(tokenizer, fmt, max_length, eos_id=eos)
    if fmt == "plain":
        bos = tokenizer.bos_token_id
        f.pre = [bos] if bos is not None and getattr(tokenizer, "add_bos_token", False) else []
        f.gen = f.ids("\n")
        return f
    if not getattr(tokenizer, "chat_template", None):
        raise SdelabError("prompt_format 'chat' needs a tokenizer with a chat template; use prompt_format: plain")
    msgs = ([{"role": "system", "content": system}] if system is not None else [])
    full = tokenizer.apply_chat_template(msgs + [{"role": "user", "content": _U}, {"role": "assistant",
                                                                                    "content": _A}], tokenize=False)
    gen_only = tokenizer.apply_chat_template(msgs + [{"role": "user", "content": _U}], tokenize=False,
                                             add_generation_prompt=True)
    pre_text, rest = full.split(_U)
    mid_text, post_text = rest.split(_A)
    if gen_only != pre_text + _U + mid_text:
        raise SdelabError("this chat template renders the assistant turn differently from its generation "
                          "prompt; use prompt_format: plain")
    eos_text = tokenizer.convert_ids_to_tokens(eos)
    if not post_text.startswith(eos_text):
        raise SdelabError(f"the chat template ends an assistant turn with {post_text!r}, not the end-of-sequence "
                          f"token {eos_text!r}; use prompt_format: plain")
    f.pre = f.ids(pre_text)
    f.gen = f.ids(mid_text)
    return f


def _segment_ids(f: Formatter, segs: tuple[Segment, ...]) -> list[tuple[Segment, list[int]]]:
    return [(s, list(f.ids(s.text))) for s in segs]


def _fit(f: Formatter, parts: list[tuple[Segment, list[int]]], budget: int, what: str) -> int:
    """Cut the input segment's tail until the prompt fits `budget` tokens; returns tokens cut."""
    total = sum(len(ids) for _, ids in parts)
    over = total - budget
    if over <= 0:
        return 0
    for seg, ids in parts:
        if seg.kind == "input" and len(ids) > over:
            del ids[len(ids) - over:]
            return over
    raise SdelabError(f"{what} does not fit max_length={f.max_length} even with its input truncated "
                      f"({total + f.max_length - budget} tokens); raise train.max_length")


def encode_train(f: Formatter, sample: Sample) -> Encoded:
    resp = f.ids(sample.response.text) + [f.eos_id]
    parts = _segment_ids(f, sample.prompt)
    cut = _fit(f, parts, f.max_length - len(f.pre) - len(f.gen) - len(resp), "a training sample")
    ids, labels = list(f.pre), [IGNORE] * len(f.pre)
    for seg, seg_ids in parts:
        ids += seg_ids
        labels += seg_ids if seg.trained else [IGNORE] * len(seg_ids)
    ids += f.gen
    labels += [IGNORE] * len(f.gen)
    ids += resp
    labels += resp
    return Encoded(ids, labels, cut)


def encode_prompt(f: Formatter, sample: Sample, reserve: int) -> tuple[list[int], int]:
    """Prompt ids for generation or scoring, leaving `reserve` tokens for the response."""
    parts = _segment_ids(f, sample.prompt)
    cut = _fit(f, parts, f.max_length - len(f.pre) - len(f.gen) - reserve, "an evaluation prompt")
    ids = list(f.pre)
    for _, seg_ids in parts:
        ids += seg_ids
    return ids + f.gen, cut


def pad_batch(seqs: list[list[int]], pad_id: int, left: bool = False):
    """(input_ids, attention_mask) tensors of equal-length rows; left padding for generation."""
    import torch
    n = max(len(x) for x in seqs)
    ids = torch.full((len(seqs), n), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), n), dtype=torch.long)
    for r, x in enumerate(seqs):
        sl = slice(n - len(x), n) if left else slice(0, len(x))
        ids[r, sl] = torch.tensor(x, dtype=torch.long)
        mask[r, sl] = 1
    return ids, mask


def response_ids(f: Formatter, text: str) -> list[int]:
    return f.ids(text) + [f.eos_id]
