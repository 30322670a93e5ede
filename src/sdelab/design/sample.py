"""A rendered sample: prompt segments that each know whether they are trained on, and the response. Produced by
design.codec, tokenized by models.tokenize."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

SegmentKind = Literal["demos", "instruction", "input", "sep", "response"]


@dataclass(frozen=True)
class Segment:
    text: str
    kind: SegmentKind
    trained: bool


@dataclass(frozen=True)
class Sample:
    prompt: tuple[Segment, ...]  # what the model reads
    response: Segment | None  # what the model writes (always trained); None for an evaluation prompt

    @property
    def prompt_text(self) -> str:
        return "".join(s.text for s in self.prompt)
