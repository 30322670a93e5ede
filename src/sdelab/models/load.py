"""Load a resolved model and its tokenizer, in the precision the run asks for."""
from __future__ import annotations

import os
from typing import Literal

import torch

from sdelab.errors import SdelabError
from sdelab.models.catalog import ResolvedModel
from sdelab.models.quiet import quiet_transformers


def load_tokenizer(model: ResolvedModel):
    from transformers import AutoTokenizer
    try:
        tok = AutoTokenizer.from_pretrained(model.path)
    except OSError as e:
        raise SdelabError(f"cannot load the tokenizer of '{model.name}': {e}") from None
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def load_causal_lm(model: ResolvedModel, precision: Literal["bf16", "fp32"]):
    from transformers import AutoModelForCausalLM
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    try:
        with quiet_transformers():
            lm = AutoModelForCausalLM.from_pretrained(model.path, dtype=dtype)
    except OSError as e:
        raise SdelabError(f"cannot load model '{model.name}' from {model.path}: {e}") from None
    lm.config.use_cache = False
    return lm


def set_threads() -> int:
    """Use every core the process may run on (torch defaults to physical cores, sometimes fewer)."""
    n = int(os.environ.get("SDELAB_THREADS", 0)) or len(os.sched_getaffinity(0))
    torch.set_num_threads(n)
    return n


def is_causal_lm(model: ResolvedModel) -> bool:
    """A decoder LLM (its config names a *ForCausalLM architecture), as opposed to a BERT-like encoder."""
    import json
    from pathlib import Path
    cfg = Path(model.path) / "config.json"
    if not cfg.exists():  # a hub id: ask transformers
        from transformers import AutoConfig
        archs = AutoConfig.from_pretrained(model.path).architectures or []
    else:
        archs = json.loads(cfg.read_text()).get("architectures") or []
    return any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs)


def classification_pad_id(tokenizer) -> int:
    """A padding id that differs from end-of-sequence, so the last real token is found (sequence classification
    reads the last non-pad token). Adds a pad token when the vocabulary has no other candidate."""
    eos = tokenizer.eos_token_id
    for cand in (tokenizer.pad_token_id, tokenizer.unk_token_id,
                 tokenizer.convert_tokens_to_ids("<|endoftext|>") if "<|endoftext|>" in tokenizer.get_vocab() else None):
        if cand is not None and cand != eos:
            return cand
    raise SdelabError("the tokenizer has no token besides end-of-sequence to pad with; discriminative modeling "
                      "needs one (add a pad token to the model's tokenizer)")


def load_seq_cls(model: ResolvedModel, precision: Literal["bf16", "fp32"], num_labels: int, pad_id: int):
    """The backbone with a freshly initialised linear head on its last non-pad token (score / classifier)."""
    from transformers import AutoModelForSequenceClassification
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    try:
        with quiet_transformers():
            m = AutoModelForSequenceClassification.from_pretrained(model.path, dtype=dtype, num_labels=num_labels,
                                                                   ignore_mismatched_sizes=True)
    except (OSError, ValueError) as e:
        raise SdelabError(f"cannot load '{model.name}' with a classification head: {e}") from None
    m.config.pad_token_id = pad_id
    if hasattr(m.config, "use_cache"):
        m.config.use_cache = False
    return m
