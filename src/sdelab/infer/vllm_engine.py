"""The optional vLLM evaluation backend (`eval.backend: vllm`): generation and label scoring through vLLM's offline
API, the same quantities as infer/generate.py (greedy or seeded sampled continuations of token-id prompts) and
infer/score.py (the sum of the log-probabilities of each candidate's tokens after the prompt; the candidate ids
passed in already end with end-of-sequence for `eval.scoring: sequence`).

Off by default; the built-in path is the tested one. vLLM is imported lazily, never when sdelab is imported: it
needs `pip install vllm` and a CUDA GPU. Its numerics are not sdelab's (other kernels, batching and, in bf16, other
rounding), so a near tie between two tokens or two labels may go the other way; nothing here redoes a near tie
alone as the built-in path does (infer/ties.py). vLLM also stops at every end-of-sequence id the model's
generation_config.json lists, besides the tokenizer's.

One engine (a `vllm.LLM`) is kept at a time in the sub-study's cache: built once per base model and serving every
cell's LoRA adapter by a `LoRARequest`; under full fine-tuning each cell's own weights need an engine of their own.
"""
from __future__ import annotations

import gc
import importlib
from pathlib import Path

from sdelab.errors import SdelabError
from sdelab.infer.generate import Generation

# The fraction of the GPU's memory vLLM may claim (weights, activations, KV cache). Not vLLM's 0.9: the sub-study's
# base model that every cell deep-copies for training stays loaded on the same GPU (study/modeling.py base_lm), and
# the next cell trains beside the engine.
GPU_MEMORY_UTILIZATION = 0.45
# the values vLLM accepts as max_lora_rank (LoRAConfig); an adapter of a smaller rank is served by the next one up
LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)
DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}
CACHE_KIND = "vllm"  # ctx.cache keys: (CACHE_KIND, weights folder, max_lora_rank or None)


def check_available() -> None:
    """Refuse the vLLM backend where it cannot run, before any training."""
    hint = ("eval.backend: vllm needs `pip install vllm` on a machine with a CUDA GPU; the built-in backend "
            "(eval.backend: builtin, the default) works everywhere")
    try:
        importlib.import_module("vllm")
    except ImportError:
        raise SdelabError(f"vLLM is not installed. {hint}", field="eval.backend") from None
    import torch
    if not torch.cuda.is_available():
        raise SdelabError(f"no CUDA GPU is available. {hint}", field="eval.backend")


def lora_rank(r: int) -> int:
    """The max_lora_rank that serves a rank-r adapter."""
    for allowed in LORA_RANKS:
        if allowed >= r:
            return allowed
    raise SdelabError(f"vLLM serves LoRA adapters up to rank {LORA_RANKS[-1]}; this study trains rank {r}",
                      field="eval.backend")


class Engine:
    """A vLLM `LLM` with sdelab's two evaluation calls; adapters are named by their folder."""

    def __init__(self, llm):
        self.llm = llm
        self._lora_ids: dict[str, int] = {}  # adapter folder -> vLLM's integer id (unique per adapter, from 1)

    def _lora(self, adapter: Path | None):
        if adapter is None:
            return None
        from vllm.lora.request import LoRARequest
        key = str(adapter)
        if key not in self._lora_ids:
            self._lora_ids[key] = len(self._lora_ids) + 1
        n = self._lora_ids[key]
        return LoRARequest(f"adapter-{n}", n, key)

    def generate(self, prompts: list[list[int]], max_new_tokens: int, adapter: Path | None = None,
                 sampling: tuple[float, float, int] | None = None) -> list[Generation]:
        """Greedy continuations of token-id prompts (or sampled: `sampling` = (temperature, top_p, seed), the
        i-th prompt seeded with seed + i, so an item's sample depends on its seed, not on the batch)."""
        from vllm import SamplingParams
        if sampling is None:
            params = SamplingParams(temperature=0.0, max_tokens=max_new_tokens)
        else:
            temperature, top_p, seed = sampling
            params = [SamplingParams(temperature=temperature, top_p=top_p, seed=seed + i, max_tokens=max_new_tokens)
                      for i in range(len(prompts))]
        outs = self.llm.generate([{"prompt_token_ids": list(p)} for p in prompts], params,
                                 lora_request=self._lora(adapter))
        return [_generation(o.outputs[0]) for o in outs]

    def score(self, prompts: list[list[int]], candidates: list[list[int]],
              adapter: Path | None = None) -> list[list[float]]:
        """Sum of log-probabilities of each candidate continuation after each prompt: [n_prompts][n_candidates].
        One request per prompt x candidate (prompt + candidate as the prompt, one token generated and ignored);
        vLLM's prompt log-probabilities at the candidate's positions are summed. (vLLM does not read its prefix
        cache for requests that ask for prompt log-probabilities: each pair reads its whole prompt.)"""
        from vllm import SamplingParams
        if any(not p for p in prompts):
            raise ValueError("an empty prompt has no position to score its first candidate token from")
        params = SamplingParams(temperature=0.0, max_tokens=1, prompt_logprobs=0)
        requests = [{"prompt_token_ids": list(p) + list(c)} for p in prompts for c in candidates]
        outs = self.llm.generate(requests, params, lora_request=self._lora(adapter))
        scores = []
        for i, p in enumerate(prompts):
            row = []
            for j, c in enumerate(candidates):
                ids = requests[i * len(candidates) + j]["prompt_token_ids"]
                lps = outs[i * len(candidates) + j].prompt_logprobs  # [None, {token id: Logprob}, ...]
                # position k holds log P(ids[k] | ids[:k]); prompt_logprobs=0 returns the actual token's entry
                row.append(float(sum(lps[k][ids[k]].logprob for k in range(len(p), len(p) + len(c)))))
            scores.append(row)
        return scores


def _generation(out) -> Generation:
    """vLLM's CompletionOutput as sdelab's Generation. finished: not cut by the max_tokens budget (finish_reason
    'length'); new_tokens without the end-of-sequence token that ended it; alone: always False (vLLM has no
    one-at-a-time redo of a near tie, the neutral value)."""
    n = len(out.token_ids)
    if out.finish_reason == "stop" and n and not isinstance(getattr(out, "stop_reason", None), str):
        n -= 1  # stopped by an end-of-sequence / stop token id, which token_ids holds (a stop string is text)
    return Generation(out.text, out.finish_reason != "length", n)


def engine(cache: dict, weights: str | Path, tokenizer: str | Path, precision: str,
           max_lora_rank: int | None) -> Engine:
    """The sub-study's vLLM engine for `weights` (the base model's folder, or a fully fine-tuned cell's
    `work/model`), with LoRA enabled up to `max_lora_rank` (None: no adapters), built once and kept in `cache`
    (ctx.cache). An engine for other weights is dropped first: two would not fit beside the training model."""
    check_available()
    key = (CACHE_KIND, str(weights), max_lora_rank)
    if key not in cache:
        stale = [k for k in cache if isinstance(k, tuple) and k and k[0] == CACHE_KIND]
        for k in stale:
            del cache[k]
        import torch
        if stale:
            gc.collect()  # best effort: vLLM frees its GPU memory when its engine is collected
        torch.cuda.empty_cache()  # what the training copy of the model left cached counts as used to vLLM
        import vllm
        lora = {"enable_lora": True, "max_lora_rank": max_lora_rank} if max_lora_rank is not None else {}
        cache[key] = Engine(vllm.LLM(model=str(weights), tokenizer=str(tokenizer), dtype=DTYPES[precision], seed=0,
                                     gpu_memory_utilization=GPU_MEMORY_UTILIZATION, **lora))
    return cache[key]
