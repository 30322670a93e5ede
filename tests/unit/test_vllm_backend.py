"""The optional vLLM evaluation backend (`eval.backend: vllm`, infer/vllm_engine.py) against a stand-in.

What this tests: sdelab's adapter against vLLM's documented offline interface (`vllm.LLM(...)`,
`LLM.generate(prompts, sampling_params, lora_request=...)` with `{"prompt_token_ids": ids}` prompts,
`SamplingParams(temperature, top_p, seed, max_tokens, prompt_logprobs)`, `vllm.lora.request.LoRARequest(name,
int_id, path)`, and RequestOutput's `.outputs[0].text / .token_ids / .finish_reason` and `.prompt_logprobs`), with
a fake `vllm` package injected into sys.modules that records its calls and answers deterministically; and that a
study with the vLLM backend trains, hands vLLM the saved adapter instead of a merged model, and keeps its cell ids.

What this does not test: the real vLLM. It is not installed here (no GPU on this machine, and it needs CUDA), so
neither its numerics nor whether its API still has this shape in the version a user installs is checked.
"""
from __future__ import annotations

import hashlib
import json
import sys
import types
from dataclasses import dataclass

import pytest
import torch
import yaml

from sdelab.errors import SdelabError
from sdelab.infer import vllm_engine
from sdelab.infer.vllm_engine import Engine, check_available, engine, lora_rank
from sdelab.study.grid import cell_id

EOS = 99


class SamplingParams:
    def __init__(self, temperature=1.0, top_p=1.0, seed=None, max_tokens=16, prompt_logprobs=None, **rest):
        self.temperature, self.top_p, self.seed, self.max_tokens = temperature, top_p, seed, max_tokens
        self.prompt_logprobs, self.rest = prompt_logprobs, rest


@dataclass
class LoRARequest:
    lora_name: str
    lora_int_id: int
    lora_path: str


@dataclass
class Logprob:
    logprob: float


@dataclass
class Completion:
    text: str
    token_ids: list
    finish_reason: str
    stop_reason: object = None


@dataclass
class RequestOutput:
    outputs: list
    prompt_logprobs: list | None = None


def position_logprob(k: int, token: int) -> float:
    """The stand-in's log-probability of `token` at prompt position k: different at every position, so summing
    the wrong positions gives a different number."""
    return -(k * 0.01 + (token % 5) * 0.25)


class LLM:
    built: list = []
    replies = ("positive",)  # generation: the i-th prompt gets replies[i % len]
    length_cut = ()  # generation: these prompt indices hit max_tokens

    def __init__(self, **kwargs):
        self.kwargs, self.calls = kwargs, []
        LLM.built.append(self)

    def generate(self, prompts, sampling_params=None, lora_request=None, use_tqdm=True):
        self.calls.append((prompts, sampling_params, lora_request))
        outs = []
        for i, p in enumerate(prompts):
            ids = p["prompt_token_ids"]
            sp = sampling_params[i] if isinstance(sampling_params, list) else sampling_params
            if sp.prompt_logprobs is not None:  # the actual token's entry, and a decoy (another token's)
                lps = [None] + [{t: Logprob(position_logprob(k, t)), t + 1: Logprob(-50.0)}
                                for k, t in enumerate(ids) if k]
                outs.append(RequestOutput([Completion("x", [7], "length")], lps))
            elif i in self.length_cut:
                outs.append(RequestOutput([Completion("cut of", [5] * sp.max_tokens, "length")]))
            else:
                outs.append(RequestOutput([Completion(self.replies[i % len(self.replies)], [3, 4, EOS], "stop")]))
        return outs


@pytest.fixture
def fake_vllm(monkeypatch):
    vllm = types.ModuleType("vllm")
    vllm.LLM, vllm.SamplingParams = LLM, SamplingParams
    lora = types.ModuleType("vllm.lora")
    request = types.ModuleType("vllm.lora.request")
    request.LoRARequest = LoRARequest
    vllm.lora, lora.request = lora, request
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.lora", lora)
    monkeypatch.setitem(sys.modules, "vllm.lora.request", request)
    monkeypatch.setattr(LLM, "built", [])
    return vllm


@pytest.fixture
def gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)


def test_without_vllm_the_backend_is_refused_naming_eval_backend(monkeypatch, gpu):
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm -> ImportError
    with pytest.raises(SdelabError) as e:
        check_available()
    assert e.value.field == "eval.backend" and "pip install vllm" in str(e.value) and "CUDA" in str(e.value)


def test_without_a_gpu_the_backend_is_refused(monkeypatch, fake_vllm):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SdelabError) as e:
        check_available()
    assert e.value.field == "eval.backend" and "built-in backend" in str(e.value)


def test_with_vllm_and_a_gpu_it_is_available(fake_vllm, gpu):
    check_available()


def test_the_engine_is_built_once_per_base_model(tmp_path, fake_vllm, gpu):
    cache = {}
    a = engine(cache, tmp_path / "base", tmp_path / "base", "bf16", lora_rank(4))
    assert engine(cache, tmp_path / "base", tmp_path / "base", "bf16", lora_rank(4)) is a
    assert len(LLM.built) == 1
    kw = LLM.built[0].kwargs
    assert kw == {"model": str(tmp_path / "base"), "tokenizer": str(tmp_path / "base"), "enable_lora": True,
                  "max_lora_rank": 8, "dtype": "bfloat16", "seed": 0,
                  "gpu_memory_utilization": vllm_engine.GPU_MEMORY_UTILIZATION}
    # full fine-tuning: a cell's own weights, the base model's tokenizer, no LoRA; the previous engine is dropped
    b = engine(cache, tmp_path / "cell" / "model", tmp_path / "base", "fp32", None)
    assert b is not a and len(LLM.built) == 2 and list(cache) == [("vllm", str(tmp_path / "cell" / "model"), None)]
    assert LLM.built[1].kwargs["tokenizer"] == str(tmp_path / "base") and "enable_lora" not in LLM.built[1].kwargs
    assert LLM.built[1].kwargs["dtype"] == "float32"


def test_lora_ranks_round_up_to_what_vllm_accepts():
    assert [lora_rank(r) for r in (1, 4, 8, 9, 64, 300)] == [8, 8, 8, 16, 64, 320]
    with pytest.raises(SdelabError):
        lora_rank(1024)


def test_greedy_generation_with_the_cells_adapter(tmp_path, fake_vllm, gpu, monkeypatch):
    monkeypatch.setattr(LLM, "replies", ("positive", "negative", "neutral"))
    monkeypatch.setattr(LLM, "length_cut", (2,))
    e = Engine(LLM())
    adapter = tmp_path / "cell.partial" / "adapter"
    gens = e.generate([[1, 2], [1, 3, 4], [5]], 6, adapter)
    prompts, params, lora = LLM.built[0].calls[0]
    assert prompts == [{"prompt_token_ids": [1, 2]}, {"prompt_token_ids": [1, 3, 4]}, {"prompt_token_ids": [5]}]
    assert params.temperature == 0 and params.max_tokens == 6 and params.seed is None
    assert lora.lora_path == str(adapter) and lora.lora_int_id >= 1
    assert [g.text for g in gens] == ["positive", "negative", "cut of"]
    assert [g.finished for g in gens] == [True, True, False]  # finish_reason 'length': cut by the budget
    assert [g.new_tokens for g in gens] == [2, 2, 6]  # without the end-of-sequence token that stopped it
    assert not any(g.alone for g in gens)
    # the same adapter keeps its id; another adapter gets a new one; no adapter: no LoRARequest
    e.generate([[1]], 2, adapter)
    e.generate([[1]], 2, tmp_path / "other" / "adapter")
    e.generate([[1]], 2, None)
    ids = [c[2] and c[2].lora_int_id for c in LLM.built[0].calls]
    assert ids[0] == ids[1] != ids[2] and ids[3] is None


def test_sampled_generation_seeds_each_prompt(fake_vllm, gpu):
    e = Engine(LLM())
    e.generate([[1], [2], [3]], 5, None, sampling=(0.7, 0.9, 3000))
    params = LLM.built[0].calls[0][1]
    assert [(p.temperature, p.top_p, p.seed, p.max_tokens) for p in params] == [(0.7, 0.9, 3000 + i, 5)
                                                                                for i in range(3)]


def test_score_sums_exactly_the_candidate_positions(tmp_path, fake_vllm, gpu):
    e = Engine(LLM())
    prompts = [[10, 11, 12], [20, 21]]
    cands = [[30, EOS], [31, 32, EOS]]
    scores = e.score(prompts, cands, tmp_path / "adapter")
    reqs, params, lora = LLM.built[0].calls[0]
    assert [r["prompt_token_ids"] for r in reqs] == [p + c for p in prompts for c in cands]
    assert params.max_tokens == 1 and params.prompt_logprobs == 0 and lora.lora_path == str(tmp_path / "adapter")
    for i, p in enumerate(prompts):
        for j, c in enumerate(cands):
            ids = p + c
            want = sum(position_logprob(k, ids[k]) for k in range(len(p), len(ids)))
            assert scores[i][j] == pytest.approx(want, abs=1e-12)
            shifted = sum(position_logprob(k, ids[k]) for k in range(len(p) - 1, len(ids) - 1))
            assert scores[i][j] != pytest.approx(shifted)  # a slice one position off would be caught


def _id(config: dict) -> str:
    """The id formula before eval.backend existed (cell_id's hash of the config, compile left out of train)."""
    config = {**config, "train": {k: v for k, v in config["train"].items() if k != "compile"}}
    return hashlib.sha256(json.dumps(config, sort_keys=True, ensure_ascii=False,
                                     separators=(",", ":")).encode()).hexdigest()[:12]


def test_backend_is_not_part_of_a_cells_id():
    old = {"task": "t", "seed": 0, "train": {"epochs": 1, "compile": "auto"},
           "eval": {"method": "score", "batch_size": 32, "decoding": None}}
    assert cell_id(old) == _id(old)  # a cell made before eval.backend existed keeps its id
    for backend in ("builtin", "vllm"):
        assert cell_id({**old, "eval": {**old["eval"], "backend": backend}}) == cell_id(old)
    assert cell_id({**old, "eval": {**old["eval"], "method": "generate"}}) != cell_id(old)


def _study(tmp_path, model_dir, task_yaml, **extra):
    s = {"name": "vl", "task": str(task_yaml), "model": str(model_dir), "designs": ["inst-first"],
         "train_sizes": [6], "seeds": [0], "untuned": [0], "output_dir": str(tmp_path / "runs"),
         "train": {"epochs": 1, "batch_size": 3, "max_length": 128, "precision": "fp32", "compile": "off",
                   "lora": {"r": 4}},
         "eval": {"max_new_tokens": 4, "batch_size": 4}}
    for k, v in extra.items():
        s[k] = {**s[k], **v} if isinstance(v, dict) and isinstance(s.get(k), dict) else v
    p = tmp_path / "study.yaml"
    p.write_text(yaml.safe_dump(s))
    return p


def test_cell_ids_and_builtin_configs_are_unchanged_by_the_backend(tmp_path, tiny_model_dir, tiny_task_yaml):
    from sdelab.config import load_study
    from sdelab.study.grid import expand_all
    cells = {}
    for backend in (None, "builtin", "vllm"):
        p = _study(tmp_path, tiny_model_dir, tiny_task_yaml, **({"eval": {"backend": backend}} if backend else {}))
        study, path = load_study(p)
        cells[backend] = [c for s in expand_all(study, path.parent) for c in s.cells]
    assert [c.id for c in cells[None]] == [c.id for c in cells["builtin"]] == [c.id for c in cells["vllm"]]
    assert all("backend" not in c.config["eval"] for c in cells["builtin"])  # config.yaml reads as before
    assert all(c.config["eval"]["backend"] == "vllm" for c in cells["vllm"])  # recorded, not hashed


def test_a_head_is_not_served_by_vllm(tmp_path, tiny_model_dir, tiny_task_yaml, capsys):
    from sdelab.cli import main
    p = _study(tmp_path, tiny_model_dir, tiny_task_yaml, modeling="discriminative", untuned=[],
               eval={"backend": "vllm"})
    assert main(["run", str(p)]) == 2
    err = capsys.readouterr().err
    assert "eval.backend" in err and "not served by vLLM" in err


def test_run_without_vllm_fails_before_training(tmp_path, tiny_model_dir, tiny_task_yaml, monkeypatch, capsys):
    from sdelab.cli import main
    monkeypatch.setitem(sys.modules, "vllm", None)
    p = _study(tmp_path, tiny_model_dir, tiny_task_yaml, eval={"backend": "vllm"})
    assert main(["run", str(p)]) == 2
    err = capsys.readouterr().err
    assert "eval.backend" in err and "pip install vllm" in err
    assert not list((tmp_path / "runs").glob("*__n6__*"))


@pytest.mark.parametrize("method", ["score", "generate"])
def test_a_study_evaluates_through_vllm_with_the_saved_adapter(tmp_path, tiny_model_dir, tiny_task_yaml,
                                                                 fake_vllm, monkeypatch, method):
    """A whole (tiny) study: the untuned cell loads nothing and asks vLLM without an adapter, the trained cell
    saves its adapter, merges nothing and asks vLLM with it; one engine serves both."""
    from peft.tuners.tuners_utils import BaseTuner

    from sdelab.cli import main
    checks = []
    monkeypatch.setattr(vllm_engine, "check_available", lambda: checks.append(1))  # (no CUDA to pretend here)

    def no_merge(*a, **k):
        raise AssertionError("the vLLM backend must not merge the adapter")
    monkeypatch.setattr(BaseTuner, "merge_and_unload", no_merge)
    p = _study(tmp_path, tiny_model_dir, tiny_task_yaml, eval={"backend": "vllm", "method": method})
    assert main(["run", str(p)]) == 0
    assert checks  # prepare checked before anything trained
    assert len(LLM.built) == 1
    kw = LLM.built[0].kwargs
    assert kw["model"] == kw["tokenizer"] == str(tiny_model_dir) and kw["enable_lora"] and kw["max_lora_rank"] == 8
    assert kw["dtype"] == "float32"
    calls = LLM.built[0].calls
    loras = [c[2] for c in calls]
    assert loras[0] is None  # the untuned cell runs first (run_order): no adapter
    trained = next((tmp_path / "runs").glob("*__n6__*"))
    assert (trained / "adapter" / "adapter_config.json").exists()
    assert all(r is not None and r.lora_path.endswith("adapter") and trained.name in r.lora_path
               for r in loras[2:])  # (the work folder is <cell>.partial until the cell is complete)
    rows = [json.loads(x) for x in (trained / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 7
    if method == "score":
        assert all(c[1].prompt_logprobs == 0 and c[1].max_tokens == 1 for c in calls)
        assert all(len(c[0]) == 3 * n for c, n in zip(calls, (4, 3, 4, 3)))  # items x labels
        assert all(r["raw"] == max(r["scores"], key=r["scores"].get) for r in rows)
    else:
        assert all(c[1].temperature == 0 and c[1].max_tokens == 4 for c in calls)
        assert all(r["raw"] == "positive" and r["parsed"] == "positive" for r in rows)
    m = json.loads((trained / "metrics.json").read_text())
    assert m["eval"]["test_id"]["n"] == 4
