"""Render an example into a training sample, and parse a model's output back — side by side, so one design
cannot write what it cannot read: `parse(task, design, render(task, design, x).response.text) == (x.gold, None)`.

Output formats, for the families with several predictions per example (multi_aspect, span_extraction):
- natural: one sentence, items joined by the language's comma: `食品评价：正面，价格水平：负面。`
- lines:   one `target: value` per line
- json:    ONE JSON object for the whole answer: {"food": "positive", ...}; spans: {"protein": ["IL-2"], ...}
Under OU an answer with nothing to report is written `无` / `none` (JSON: `{}`).
Spans are written grouped by type in schema order (reading order within a type); the loader stores gold spans in
the same canonical order.
"""
from __future__ import annotations

import json
import re
import unicodedata
from typing import Any, Literal

from sdelab.design.options import Design
from sdelab.design.sample import Sample, Segment
from sdelab.tasks.task import CLASSIFICATION, UNMENTIONED, Example, Task

ErrorKind = Literal["empty", "unparsable", "unknown_target", "unknown_label", "missing_target", "duplicate_target",
                    "truncated"]
ERROR_KINDS: tuple[str, ...] = ErrorKind.__args__  # type: ignore[attr-defined]

LANG = {
    "zh": {"colon": "：", "comma": "，", "end": "。", "answer": "答案：", "reason": "理由：", "none": "无",
           "span_placeholder": "无", "aspect_placeholder": "未提及"},
    "en": {"colon": ": ", "comma": ", ", "end": ".", "answer": "Answer:", "reason": "Reason:", "none": "none",
           "span_placeholder": "none", "aspect_placeholder": "not mentioned"},
}

HINTS = {  # appended to the instruction, so that No-inst designs carry none of them
    ("zh", "multi_aspect", "natural"): "请用一句话写出各方面的情感，格式为“方面：情感，方面：情感。”",
    ("zh", "multi_aspect", "lines"): "每行写一个方面及其情感，格式为“方面：情感”。",
    ("zh", "multi_aspect", "json"): "请输出一个JSON对象，键为方面，值为情感。",
    ("en", "multi_aspect", "natural"): "Answer in one sentence: 'aspect: sentiment, aspect: sentiment.'",
    ("en", "multi_aspect", "lines"): "Write one line per aspect: 'aspect: sentiment'.",
    ("en", "multi_aspect", "json"): "Answer with one JSON object mapping each aspect to its sentiment.",
    ("zh", "span_extraction", "natural"): "请用一句话写出找到的内容，格式为“类型：文本，类型：文本。”",
    ("zh", "span_extraction", "lines"): "每行写一个结果，格式为“类型：文本”。",
    ("zh", "span_extraction", "json"): "请输出一个JSON对象，键为类型，值为文本列表。",
    ("en", "span_extraction", "natural"): "Answer in one sentence: 'type: text, type: text.'",
    ("en", "span_extraction", "lines"): "Write one line per item: 'type: text'.",
    ("en", "span_extraction", "json"): "Answer with one JSON object mapping each type to a list of texts.",
    ("zh", "placeholder"): "没有提到的{what}写“{ph}”。",
    ("en", "placeholder"): "Write '{ph}' for every {what} the text does not mention.",
    ("zh", "omit"): "只写提到的{what}；都没有时写“{none}”。",
    ("en", "omit"): "List only the {what}s the text mentions; write '{none}' if there is none.",
    ("zh", "number"): "用数字表示标签：{pairs}。",
    ("en", "number"): "Use numbers for the labels: {pairs}.",
    ("zh", "cot"): "先写出理由，再在“答案：”之后给出答案。",
    ("en", "cot"): "First explain your reasoning, then give the answer after 'Answer:'.",
    ("zh", "reverse_cot"): "先给出答案，再在“理由：”之后说明理由。",
    ("en", "reverse_cot"): "Give the answer first, then explain it after 'Reason:'.",
}
WHAT = {("zh", "multi_aspect"): "方面", ("en", "multi_aspect"): "aspect", ("zh", "span_extraction"): "类型",
        ("en", "span_extraction"): "type"}


class MissingRationale(ValueError):
    pass


# ---------------------------------------------------------------------------------------------------- render ---
def render(task: Task, design: Design, example: Example, demos: list[Example] = (), *,
           response: bool = True) -> Sample:
    """The sample the model trains on; with response=False, the prompt it is evaluated with (a test example
    needs no rationale then)."""
    mi = design.input_loss
    sep = Segment("\n", "sep", mi)
    inp = Segment(input_text(task, design, example), "input", mi)
    parts: list[Segment] = []
    if demos:
        blocks = [input_text(task, design, d) + "\n" + response_text(task, design, d) for d in demos]
        parts += [Segment("\n\n".join(blocks) + "\n\n", "demos", mi)]
    if design.instruction == "none":
        parts += [inp]
    else:
        inst = Segment(instruction_text(task, design), "instruction", mi)
        parts += [inst, sep, inp] if design.instruction == "first" else [inp, sep, inst]
    resp = Segment(response_text(task, design, example), "response", True) if response else None
    return Sample(prompt=tuple(parts), response=resp)


def input_text(task: Task, design: Design, example: Example) -> str:
    return _fill(task.template(design.template).input, example.fields)


def instruction_text(task: Task, design: Design) -> str:
    tpl = task.template(design.template)
    if design.prompt_style == "complex":
        if not tpl.complex:
            raise ValueError(f"task '{task.name}' template '{tpl.name}' has no complex prompt; add `complex:` to it")
        text = tpl.complex
    else:
        text = tpl.instruction
    fam, lang = task.spec.family, task.spec.language
    L = LANG[lang]
    values = {"targets": L["comma"].join(_target_words(task).values()),
              "labels": L["comma"].join(str(w) for w in _label_words(task, design).values())}
    hints = []
    if fam in ("multi_aspect", "span_extraction"):
        hints.append(HINTS[(lang, fam, design.output_format)])
        hints.append(HINTS[(lang, "placeholder" if design.unmentioned == "placeholder" else "omit")].format(
            what=WHAT[(lang, fam)], ph=_placeholder(task, design), none=L["none"]))
    if design.labels == "number" and (fam in CLASSIFICATION or fam == "multi_aspect"):
        pairs = L["comma"].join(f"{task.label_number(n)}={w}" for n, w in _label_words(task, None).items())
        hints.append(HINTS[(lang, "number")].format(pairs=pairs))
    if design.reasoning != "none":
        hints.append(HINTS[(lang, design.reasoning)])
    text = _fill(text, values)
    if not hints:
        return text
    return text + "".join(hints) if lang == "zh" else text + " " + " ".join(hints)


def response_text(task: Task, design: Design, example: Example) -> str:
    answer = answer_text(task, design, example.gold)
    if design.reasoning == "none":
        return answer
    if not example.rationale:
        raise MissingRationale(f"example {example.id} has no rationale, which design '{design.name}' needs")
    L = LANG[task.spec.language]
    why = " ".join(example.rationale.split()) if task.spec.language == "en" else "".join(example.rationale.split())
    if design.reasoning == "cot":
        return f"{why}\n{L['answer']}\n{answer}"
    return f"{answer}\n{L['reason']}\n{why}"


def answer_text(task: Task, design: Design, gold: Any) -> str:
    fam, L = task.spec.family, LANG[task.spec.language]
    if fam in CLASSIFICATION:
        return str(_label_words(task, design)[gold])
    if fam == "text_generation":
        return gold
    items = _items(task, design, gold)
    if design.output_format == "json":
        obj: dict[str, Any] = {}
        for k, v in items:
            if fam == "span_extraction":
                obj.setdefault(k, [])
                if v is not None:
                    obj[k].append(v)
            else:
                obj[k] = _placeholder(task, design) if v is None else v
        return json.dumps(obj, ensure_ascii=False)
    if not items:
        return L["none"]
    strs = [(k, _placeholder(task, design) if v is None else str(v)) for k, v in items]
    if design.output_format == "lines":
        return "\n".join(f"{k}{L['colon']}{v}" for k, v in strs)
    return L["comma"].join(f"{k}{L['colon']}{v}" for k, v in strs) + L["end"]


def _items(task: Task, design: Design, gold: Any) -> list[tuple[str, Any]]:
    """(target as written, value as written or None for a placeholder), in schema order."""
    words, out = _target_words(task), []
    pu = design.unmentioned == "placeholder"
    if task.spec.family == "multi_aspect":
        labels = _label_words(task, design)
        for t in task.spec.targets:
            if gold[t] == UNMENTIONED:
                if pu:
                    out.append((words[t], task.label_number(UNMENTIONED) if design.labels == "number" else None))
            else:
                out.append((words[t], labels[gold[t]]))
        return out
    for t in task.spec.targets:  # span_extraction
        texts = [x for typ, x in gold if typ == t]
        out += [(words[t], x) for x in texts] if texts else ([(words[t], None)] if pu else [])
    return out


def _label_words(task: Task, design: Design | None) -> dict[str, Any]:
    """label name -> what the design writes (text, or a number under NumLabel)."""
    number = design is not None and design.labels == "number"
    return {n: (task.label_number(n) if number else w) for n, w in task.spec.labels.items()}


def _target_words(task: Task) -> dict[str, str]:
    return dict(task.spec.targets or {})


def _placeholder(task: Task, design: Design) -> str:
    if task.spec.placeholder:
        return task.spec.placeholder
    return LANG[task.spec.language]["aspect_placeholder" if task.spec.family == "multi_aspect"
                                    else "span_placeholder"]


def _fill(template: str, values: dict[str, Any]) -> str:
    """Replace {name} for the given names only (other braces, e.g. a JSON example, stay as they are)."""
    for k, v in values.items():
        template = template.replace("{" + k + "}", str(v))
    return template


def label_texts(task: Task, design: Design) -> dict[str, str]:
    """Classification: label name -> the full response text (the candidates of label scoring)."""
    return {name: str(w) for name, w in _label_words(task, design).items()}


# ----------------------------------------------------------------------------------------------------- parse ---
_PUNCT = " \t\r\n.,;:!?。，；：！？、\"'“”‘’`*()（）[]【】<>《》"


def _norm(s: Any) -> str:
    return unicodedata.normalize("NFKC", str(s)).strip(_PUNCT).lower()


def parse(task: Task, design: Design, text: Any, *, truncated: bool = False) -> tuple[Any, str | None]:
    """(prediction, error kind or None). Never raises, never evaluates the text. When there is an error the
    prediction is what could be salvaged (lenient scoring), or None; strict scoring counts the example wrong."""
    try:
        pred, err = _parse(task, design, text if isinstance(text, str) else "")
    except Exception:  # a parser bug must not stop an evaluation; report it as unparsable
        pred, err = None, "unparsable"
    if err is not None and truncated:
        err = "truncated"
    return pred, err


def _parse(task: Task, design: Design, text: str) -> tuple[Any, str | None]:
    fam = task.spec.family
    if not text.strip():
        return _empty_prediction(task), "empty"
    answer, err = _answer_block(task, design, text)
    if fam in CLASSIFICATION:
        pred, e = _parse_label(task, design, answer)
    elif fam == "text_generation":
        cut = re.split(r"\n\s*\n", answer.strip(), maxsplit=1)[0].strip()
        pred, e = (cut, None) if cut else (None, "empty")
    else:
        pred, e = _parse_items(task, design, answer)
    return pred, err or e


def _empty_prediction(task: Task) -> Any:
    if task.spec.family == "multi_aspect":
        return {t: UNMENTIONED for t in task.spec.targets}
    if task.spec.family == "span_extraction":
        return ()
    return None


def _answer_block(task: Task, design: Design, text: str) -> tuple[str, str | None]:
    if design.reasoning == "none":
        return text, None
    L = LANG[task.spec.language]
    lines = text.split("\n")
    if design.reasoning == "cot":
        marks = [i for i, ln in enumerate(lines) if ln.strip().startswith(L["answer"].strip())]
        if not marks:
            return text, "unparsable"
        i = marks[-1]
        rest = lines[i].strip()[len(L["answer"].strip()):].strip()
        return "\n".join(([rest] if rest else []) + lines[i + 1:]), None
    marks = [i for i, ln in enumerate(lines) if ln.strip().startswith(L["reason"].strip())]
    return ("\n".join(lines[: marks[0]]) if marks else text), None  # the rationale may be cut off: fine


def _label_table(task: Task, design: Design) -> dict[str, str]:
    table = {_norm(w): n for n, w in _label_words(task, design).items()}
    for n, al in task.spec.aliases.items():
        if n in task.spec.labels or n == UNMENTIONED:
            for a in al:
                table.setdefault(_norm(a), n)
    return table


def _parse_label(task: Task, design: Design, answer: str) -> tuple[str | None, str | None]:
    first = next((ln for ln in answer.splitlines() if ln.strip()), "")
    if not first:
        return None, "empty"
    table = _label_table(task, design)
    key = _norm(first)
    if key in table:
        return table[key], None
    return _salvage_label(task, design, answer), "unknown_label"


def _salvage_label(task: Task, design: Design, text: str) -> str | None:
    """The one label whose words (or aliases) occur in the text, if exactly one does."""
    norm = _norm(text)
    hits = {name for ans, name in _label_table(task, design).items() if ans and _contains(norm, ans)}
    return hits.pop() if len(hits) == 1 else None


def _contains(text: str, word: str) -> bool:
    if re.fullmatch(r"[\w\- ]+", word, flags=re.ASCII):  # latin words and numbers: whole-word match
        return re.search(rf"(?<![\w-]){re.escape(word)}(?![\w])", text) is not None
    return word in text


def _target_table(task: Task) -> dict[str, str]:
    table = {}
    for name, word in _target_words(task).items():
        table[_norm(word)] = name
        table.setdefault(_norm(name), name)
        for a in task.spec.aliases.get(name, []):
            table.setdefault(_norm(a), name)
    return table


def _raw_items(task: Task, design: Design, answer: str) -> tuple[list[tuple[str, Any]], str | None]:
    """(key as written, value as written) pairs, in the design's format, plus an error if the text does not
    have that format at all."""
    L = LANG[task.spec.language]
    a = answer.strip()
    if _norm(a) == _norm(L["none"]) or a == "{}":
        return [], None
    if design.output_format == "json":
        start, end = a.find("{"), a.rfind("}")
        try:
            obj = json.loads(a[start:end + 1], object_pairs_hook=list) if start >= 0 < end else None
        except (json.JSONDecodeError, RecursionError):
            obj = None
        if not isinstance(obj, list):
            return [], "unparsable"
        return [(str(k), v) for k, v in obj], None
    if design.output_format == "lines":
        items, bad = [], False
        for ln in a.splitlines():
            if not ln.strip():
                continue
            m = re.match(r"\s*(.+?)\s*[:：]\s*(.*)$", ln)
            if m:
                items.append((m.group(1), m.group(2).strip()))
            else:
                bad = True
        return items, ("unparsable" if bad or not items else None)
    # natural: find '<known target><colon>' anchors; values run to the next anchor
    words = sorted({w for w in _target_words(task).values()} | set(task.spec.targets or ()) |
                   {a for n in task.spec.targets or () for a in task.spec.aliases.get(n, [])}, key=len, reverse=True)
    text = a
    pat = re.compile(r"(?:^|(?<=[,，;；。.\s]))(" + "|".join(re.escape(w) for w in words) + r")\s*[:：]\s*",
                     flags=re.IGNORECASE)
    anchors = list(pat.finditer(text))
    if not anchors:
        return [], ("unknown_target" if re.search(r"[:：]", a) else "unparsable")
    items = []
    lead = text[: anchors[0].start()].strip(" ,，;；。.")
    for i, m in enumerate(anchors):
        end = anchors[i + 1].start() if i + 1 < len(anchors) else len(text)
        value = text[m.end():end].strip()
        value = re.sub(r"[\s,，;；]+$", "", value)
        if i + 1 == len(anchors):
            value = re.sub(r"[。.]$", "", value).strip()
        items.append((m.group(1), value))
    return items, ("unknown_target" if lead else None)


def _parse_items(task: Task, design: Design, answer: str) -> tuple[Any, str | None]:
    raw, fmt_err = _raw_items(task, design, answer)
    targets, labels = _target_table(task), _label_table(task, design)
    fam, pu = task.spec.family, design.unmentioned == "placeholder"
    ph = {_norm(_placeholder(task, design)), _norm(LANG[task.spec.language]["none"])}
    errors: set[str] = {fmt_err} if fmt_err else set()
    seen: set[str] = set()
    if fam == "multi_aspect":
        if design.labels == "number":
            ph.add(_norm(task.label_number(UNMENTIONED)))
        pred = {t: UNMENTIONED for t in task.spec.targets}
        for key, value in raw:
            t = targets.get(_norm(key))
            if t is None:
                errors.add("unknown_target")
                continue
            if t in seen:
                errors.add("duplicate_target")
                continue
            seen.add(t)
            v = _norm(value) if not isinstance(value, (list, dict)) else None
            if v is not None and v in labels:
                pred[t] = labels[v]
            elif v is not None and v in ph:
                pred[t] = UNMENTIONED
            else:
                errors.add("unknown_label")
    else:  # span_extraction
        spans: list[tuple[str, str]] = []
        for key, value in raw:
            t = targets.get(_norm(key))
            if t is None:
                errors.add("unknown_target")
                continue
            values = value if isinstance(value, list) else [value]
            seen.add(t)
            for v in values:
                if not isinstance(v, str):
                    errors.add("unparsable")
                elif _norm(v) in ph or not v.strip():
                    continue
                else:
                    spans.append((t, v.strip()))
        order = {t: i for i, t in enumerate(task.spec.targets)}
        pred = tuple(sorted(spans, key=lambda s: order[s[0]]))
    if pu and len(seen) < len(task.spec.targets):
        errors.add("missing_target")
    for kind in ERROR_KINDS:  # report the most basic error first
        if kind in errors:
            return pred, kind
    return pred, None
