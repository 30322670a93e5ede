"""GGUF files -> a cached safetensors folder, keyed by the GGUF's sha256. Converted once, then loaded as usual.

transformers dequantizes a GGUF in `from_pretrained(folder, gguf_file=...)`, but refuses to `save_pretrained`
that model (it is flagged as quantized); building the model from its config and loading the dequantized state
dict into it saves cleanly.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import struct
import tempfile
from pathlib import Path

from sdelab.errors import SdelabError


def cache_root() -> Path:
    root = Path(os.environ.get("SDELAB_CACHE", Path.home() / ".cache" / "sdelab")) / "models"
    root.mkdir(parents=True, exist_ok=True)
    return root


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_cached(path: Path) -> str:
    """sha256 of a user's file, remembered by (path, size, mtime) so big files are hashed once."""
    path = path.resolve()
    if path.exists() and not path.is_file():  # (a missing one: FileNotFoundError, as stat says)
        raise SdelabError("is a folder, not a GGUF file" if path.is_dir() else "not a regular file", path=path)
    st = path.stat()
    key = f"{path}:{st.st_size}:{st.st_mtime_ns}"
    memo = cache_root() / "hashes.json"
    table = json.loads(memo.read_text()) if memo.exists() else {}
    if key not in table:
        table[key] = sha256_file(path)
        _atomic_write(memo, json.dumps(table, indent=1))
    return table[key]


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


@contextlib.contextmanager
def lock(path: Path):
    """An exclusive lock so two processes (shards) never convert the same model at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def ensure_concatenated(parts: list[Path], expected_sha: str, cache: Path) -> Path:
    """One verified GGUF file: the single part itself, or the parts concatenated in order into the cache.
    A hash mismatch is refused (the parts may be third-party uploads)."""
    if len(parts) == 1:
        got = sha256_file(parts[0])
        _check(got, expected_sha, parts[0])
        return parts[0]
    out = cache / expected_sha[:16] / "model.gguf"
    with lock(cache / f"{expected_sha[:16]}.lock"):
        if out.exists():
            return out
        out.parent.mkdir(parents=True, exist_ok=True)
        h = hashlib.sha256()
        tmp = out.with_suffix(".gguf.partial")
        with open(tmp, "wb") as dst:
            for part in parts:
                with open(part, "rb") as src:
                    for chunk in iter(lambda: src.read(1 << 22), b""):
                        h.update(chunk)
                        dst.write(chunk)
        try:
            _check(h.hexdigest(), expected_sha, parts[0].parent)
        except SdelabError:
            tmp.unlink(missing_ok=True)
            raise
        os.replace(tmp, out)
    return out


def _check(got: str, expected: str, where: Path) -> None:
    if got != expected:
        raise SdelabError(f"sha256 mismatch: expected {expected}, got {got}; refusing to load this model "
                          "(reinstall the package; if it persists the upload has changed)", path=where)


def check_gguf(path: Path) -> None:
    """A whole GGUF file: its header, metadata and every tensor's extent inside the file (read, not loaded)."""
    from gguf import GGUFReader
    try:
        GGUFReader(path)
    except Exception as e:  # noqa: BLE001 - the reader raises whatever a cut or foreign file makes numpy/struct raise
        raise SdelabError(f"not a whole GGUF file ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}): "
                          "cut short (an interrupted download?) or not a GGUF model; download it again",
                          path=path) from None


def convert_gguf(gguf: Path, sha: str, cache: Path) -> Path:
    """Dequantize `gguf` into cache/<sha[:16]>/hf (config, safetensors, tokenizer). Idempotent, crash-safe."""
    folder = cache / sha[:16] / "hf"
    with lock(cache / f"{sha[:16]}.lock"):
        if (folder / "COMPLETE").exists():
            return folder
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from sdelab.models.quiet import quiet_transformers

        check_gguf(gguf)
        print(f"[sdelab] converting {gguf.name} to safetensors in {folder} (once) ...", flush=True)
        try:
            with quiet_transformers():
                tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
                quant = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        except (OSError, ValueError, RuntimeError, KeyError, TypeError, struct.error) as e:  # e.g. an architecture
            why = next((x for x in str(e).splitlines() if x.strip()), type(e).__name__)  # transformers cannot read
            raise SdelabError(f"cannot convert this GGUF file: {why}", path=gguf) from None
        config = quant.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        result = model.load_state_dict(quant.state_dict(), strict=False)
        missing = [k for k in result.missing_keys if "lm_head" not in k or not config.tie_word_embeddings]
        if missing or result.unexpected_keys:
            raise SdelabError(f"GGUF conversion left weights unmatched: missing {missing[:5]}, unexpected "
                              f"{result.unexpected_keys[:5]}", path=gguf)
        if getattr(config, "tie_word_embeddings", False):
            model.tie_weights()
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix="hf.partial."))
        with quiet_transformers():
            model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / "COMPLETE").write_text(json.dumps({"gguf_sha256": sha, "source": gguf.name}))
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
        if gguf.parent == folder.parent:  # a concatenation we made: the safetensors folder replaces it
            gguf.unlink(missing_ok=True)
    return folder
