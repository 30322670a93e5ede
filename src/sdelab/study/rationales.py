"""Rationales for CoT / R-CoT designs: from a data column, or generated once by a teacher and cached on disk.

The teacher is any model sdelab can load (catalog name, folder, .gguf) or an OpenAI-compatible HTTP endpoint.
It is shown the instruction, the input and the gold answer, and asked why that answer is right
(rationalization); the cache key is (teacher, prompt, example), so a rationale is generated once, ever.
"""
from __future__ import annotations

import hashlib
import json
import os
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path

from tqdm.auto import tqdm

from sdelab.config import RationaleSource
from sdelab.design.codec import answer_text, input_text, instruction_text
from sdelab.design.options import Design
from sdelab.errors import SdelabError
from sdelab.tasks.task import Example, Task

DEFAULT_PROMPTS = {
    "en": "{instruction}\n{input}\nThe correct answer is:\n{answer}\nExplain briefly, in one or two sentences, why "
          "this answer is correct. Do not repeat the question.",
    "zh": "{instruction}\n{input}\n正确答案是：\n{answer}\n请用一两句话简要说明为什么这个答案是正确的，不要重复题目。",
}


def _cache_dir() -> Path:
    d = Path(os.environ.get("SDELAB_CACHE", Path.home() / ".cache" / "sdelab")) / "rationales"
    d.mkdir(parents=True, exist_ok=True)
    return d


ASPECT_PROMPTS = {  # multi-aspect CoT writes a description per aspect (the SDE code's form): ask for them so
    "en": "{instruction}\n{input}\nThe correct answer is:\n{answer}\nFor each aspect the text mentions, write one line "
          "'aspect: what the text says about it', in one short sentence. Only the mentioned aspects.",
    "zh": "{instruction}\n{input}\n正确答案是：\n{answer}\n对评论提到的每个方面，用一句话说明评论对它说了什么，"
          "每行写“方面：说明”，只写提到的方面。",
}


def teacher_prompt(task: Task, src: RationaleSource, example: Example) -> str:
    base = Design("teacher", instruction="first", output_format="lines")
    tpl = src.prompt or (ASPECT_PROMPTS if task.spec.family == "multi_aspect" else DEFAULT_PROMPTS)[
        task.spec.language]
    values = {"instruction": instruction_text(task, replace(base, reasoning="none")),
              "input": input_text(task, base, example), "answer": answer_text(task, base, example.gold)}
    for k, v in values.items():
        tpl = tpl.replace("{" + k + "}", v)
    return tpl


def _key(src: RationaleSource, prompt: str) -> str:
    return hashlib.sha256(json.dumps([src.teacher_id(), prompt, src.max_new_tokens]).encode()).hexdigest()


def attach_rationales(task: Task, examples: list[Example], src: RationaleSource | None, need: bool,
                      where: str = "training data", device=None) -> list[Example]:
    """Examples with a rationale each. Fails before any training when one is missing and nothing can write it.
    A local teacher runs on `device` (the study's; None: SDELAB_DEVICE or the best available)."""
    if not need:
        return examples
    missing = [e for e in examples if not e.rationale]
    if not missing:
        return examples
    if src is None or not (src.teacher or src.endpoint):
        first = missing[0]
        raise SdelabError(f"a CoT / R-CoT design needs a rationale for every training example; {len(missing)} of "
                          f"the {where} have none (first: {first.source or first.id}). Add a rationale column "
                          "(rationales: {column: NAME}) or a teacher (rationales: {teacher: MODEL} or "
                          "{endpoint: URL, model: NAME})", field="rationales")
    cache = _cache_dir()
    prompts = {e.id + "\x00" + e.source: teacher_prompt(task, src, e) for e in missing}
    todo = {k: p for k, p in prompts.items() if not (cache / (_key(src, p) + ".json")).exists()}
    if todo:
        texts = _generate(src, list(todo.values()), device)
        for p, t in zip(todo.values(), texts):
            path = cache / (_key(src, p) + ".json")
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"teacher": src.teacher_id(), "prompt": p, "rationale": t},
                                      ensure_ascii=False))
            os.replace(tmp, path)
    out = []
    for e in examples:
        if e.rationale:
            out.append(e)
            continue
        r = json.loads((cache / (_key(src, prompts[e.id + "\x00" + e.source]) + ".json")).read_text())["rationale"]
        out.append(replace(e, rationale=r.strip() or "-"))
    return out


def _generate(src: RationaleSource, prompts: list[str], device=None) -> list[str]:
    if src.endpoint:
        return [_ask_endpoint(src, p) for p in tqdm(prompts, desc="rationales (endpoint)", unit="ex")]
    from sdelab.infer.generate import generate
    from sdelab.models.catalog import resolve_model
    from sdelab.models.load import load_causal_lm, load_tokenizer
    from sdelab.models.device import resolve_device, resolve_precision
    rm = resolve_model(src.teacher)
    tok = load_tokenizer(rm)
    device = resolve_device() if device is None else device
    precision = resolve_precision("auto", device)
    lm = load_causal_lm(rm, precision, device)
    ids = [tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True, tokenize=True,
                                   return_dict=False) if tok.chat_template else tok(p)["input_ids"] for p in prompts]
    gens = generate(lm, tok, [list(i) for i in ids], src.max_new_tokens, src.batch_size, precision=precision,
                    desc=f"rationales ({src.teacher})")
    return [g.text.strip() for g in gens]  # (lines kept: a multi-aspect rationale has one per aspect)


def _ask_endpoint(src: RationaleSource, prompt: str) -> str:
    body = json.dumps({"model": src.model, "messages": [{"role": "user", "content": prompt}], "temperature": 0,
                       "max_tokens": src.max_new_tokens}).encode()
    headers = {"Content-Type": "application/json"}
    if os.environ.get(src.api_key_env):
        headers["Authorization"] = f"Bearer {os.environ[src.api_key_env]}"
    req = urllib.request.Request(src.endpoint.rstrip("/") + "/chat/completions", data=body, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            data = json.loads(r.read())
        return str(data["choices"][0]["message"]["content"]).strip()
    except (urllib.error.URLError, KeyError, IndexError, json.JSONDecodeError, TimeoutError) as e:
        raise SdelabError(f"rationale endpoint {src.endpoint} failed: {e}", field="rationales.endpoint") from None
