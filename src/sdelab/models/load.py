"""Load a resolved model and its tokenizer, in the precision the run asks for."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal

import torch

from sdelab.errors import SdelabError
from sdelab.models.catalog import ResolvedModel
from sdelab.models.device import dtype as dtype_of, place
from sdelab.models.quiet import quiet_transformers


TOKENIZER_FILES = ("tokenizer*", "vocab*", "merges.txt", "*.model")  # what a tokenizer is saved as
LOAD_ERRORS = (OSError, ValueError, RuntimeError, KeyError, TypeError, AttributeError)  # what a bad folder raises


def first_line(e: BaseException) -> str:
    """A library's error message, its first line (transformers' run to several paragraphs)."""
    return next((x.strip() for x in str(e).splitlines() if x.strip()), type(e).__name__)


def model_config(folder: Path) -> dict:
    """A model folder's config.json: a JSON object, or an error naming the file."""
    cfg = folder / "config.json"
    try:
        data = json.loads(cfg.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise SdelabError(f"not valid JSON ({e.msg} at column {e.colno}); put back the model's own config.json",
                          path=cfg, line=e.lineno) from None
    except FileNotFoundError:
        raise SdelabError("the model folder has no config.json", path=folder) from None
    except (OSError, UnicodeDecodeError) as e:
        raise SdelabError(f"cannot read the model's config ({getattr(e, 'strerror', None) or 'not UTF-8 text'})",
                          path=cfg) from None
    if not isinstance(data, dict):
        raise SdelabError("not a model config (a JSON object of settings); put back the model's own config.json",
                          path=cfg)
    return data


def check_folder(model: ResolvedModel) -> None:
    """A local model folder, before anything loads from it: config.json is a JSON object, a tokenizer is there and
    every safetensors file is whole (its header read, nothing else). A hub id is transformers' to check."""
    from safetensors import SafetensorError, safe_open
    folder = Path(model.path)
    if model.source == "hub" or not folder.is_dir():
        return
    model_config(folder)
    if not any(any(folder.glob(pattern)) for pattern in TOKENIZER_FILES):
        raise SdelabError("the model folder has no tokenizer (tokenizer.json, or tokenizer_config.json with its "
                          "vocabulary); copy the tokenizer files of the model it comes from into it", path=folder)
    if not any(folder.glob("*.safetensors")) and not any(folder.glob("*.bin")):
        raise SdelabError("the model folder has no weights (model.safetensors or pytorch_model.bin)", path=folder)
    for f in sorted(folder.glob("*.safetensors")):
        try:
            with safe_open(str(f), "pt"):
                pass
        except (SafetensorError, OSError) as e:
            raise SdelabError(f"not a whole safetensors file ({first_line(e)}): cut short or damaged, e.g. by an "
                              "interrupted copy or download; copy the model's weights again", path=f) from None


def check_shapes(model: ResolvedModel, mismatched: list, head: tuple[str, ...] = ()) -> None:
    """Refuse weights whose shapes differ from what config.json builds (a head of `head` prefixes may: a new one
    replaces it); transformers would otherwise train on the random weights it puts in their place."""
    bad = [(k, got, want) for k, got, want in mismatched if not k.startswith(head)]
    if bad:
        k, got, want = bad[0]
        raise SdelabError(f"the weights do not fit config.json: {k} is {list(got)} in the weight files, config.json "
                          f"makes it {list(want)} ({len(bad)} tensors differ); config.json was edited (hidden_size, "
                          "vocab_size, ...) or belongs to another model: put back the model's own",
                          path=Path(model.path) / "config.json")


def load_tokenizer(model: ResolvedModel):
    from transformers import AutoTokenizer
    check_folder(model)
    try:
        tok = AutoTokenizer.from_pretrained(model.path)
    except LOAD_ERRORS as e:
        raise SdelabError(f"cannot load the tokenizer of '{model.name}': {first_line(e)}", path=model.path) from None
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def load_causal_lm(model: ResolvedModel, precision: Literal["bf16", "fp16", "fp32"], device="cpu"):
    """The causal LM in `precision`'s dtype, on `device` (models/device.py decides both)."""
    from transformers import AutoModelForCausalLM
    dtype = dtype_of(precision)
    check_folder(model)
    try:
        with quiet_transformers():
            lm, info = AutoModelForCausalLM.from_pretrained(model.path, dtype=dtype, ignore_mismatched_sizes=True,
                                                            output_loading_info=True)
    except LOAD_ERRORS as e:
        raise SdelabError(f"cannot load model '{model.name}': {first_line(e)}", path=model.path) from None
    check_shapes(model, info["mismatched_keys"])
    lm.config.use_cache = False
    return place(lm, device)


def set_threads() -> int:
    """Use every core the process may run on (torch defaults to physical cores, sometimes fewer)."""
    n = int(os.environ.get("SDELAB_THREADS", 0)) or \
        max(1, len(os.sched_getaffinity(0)) // int(os.environ.get("LOCAL_WORLD_SIZE", 1)))  # shared by processes
    torch.set_num_threads(n)
    return n


def is_causal_lm(model: ResolvedModel) -> bool:
    """A decoder LLM (its config names a *ForCausalLM architecture), as opposed to a BERT-like encoder."""
    if not Path(model.path).is_dir():  # a hub id: ask transformers
        from transformers import AutoConfig
        archs = AutoConfig.from_pretrained(model.path).architectures or []
    else:
        archs = model_config(Path(model.path)).get("architectures") or []
    if not isinstance(archs, list):
        raise SdelabError("'architectures' must be a list of class names", path=Path(model.path) / "config.json")
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


def load_seq_cls(model: ResolvedModel, precision: Literal["bf16", "fp16", "fp32"], num_labels: int, pad_id: int,
                 device="cpu"):
    """The backbone with a freshly initialised linear head on its last non-pad token (score / classifier), on
    `device`."""
    from transformers import AutoModelForSequenceClassification
    dtype = dtype_of(precision)
    check_folder(model)
    try:
        with quiet_transformers():
            m, info = AutoModelForSequenceClassification.from_pretrained(
                model.path, dtype=dtype, num_labels=num_labels, ignore_mismatched_sizes=True, output_loading_info=True)
    except LOAD_ERRORS as e:
        raise SdelabError(f"cannot load '{model.name}' with a classification head: {first_line(e)}",
                          path=model.path) from None
    check_shapes(model, info["mismatched_keys"], head=("score.", "classifier."))  # a new head replaces the old
    m.config.pad_token_id = pad_id
    if hasattr(m.config, "use_cache"):
        m.config.use_cache = False
    return place(m, device)
