"""Render an example into a training sample, and parse a model's output back — side by side, so one design
cannot write what it cannot read: `parse(task, design, render(task, design, x).response.text) == (x.gold, None)`.

Output formats, for the families with several predictions per example (multi_aspect, span_extraction), as the
Sample Design Engineering code writes them (docs/design-options.md shows each):
- natural: one sentence. Aspects: `食品评价：正面，价格水平：负面。`; spans grouped by type, types joined by `; `:
  `'DNA': 'IL-2 gene'; 'protein': 'IL-2', 'NF-kappa B'` (quoted where the task says `quote_spans`)
- lines:   one `target: value` per line; spans one line per type: `'protein': 'IL-2', 'NF-kappa B'`
- json:    one JSON object per line, per aspect `{"方面": "食品评价", "情感": "正面"}` or per type
  `{"entity_type": "DNA", "entity_names": ["IL-2 gene"]}` (the task's `json_keys`)
- json_object: ONE JSON object for the whole answer: {"food": "positive", ...}; spans: {"protein": ["IL-2"], ...}
- pairs:   spans only, one `["type", "text"]` per line (the SDE code's heuristic NER / event detection format)
Under OU an answer with nothing to report is written `无` / `none` (JSON: `{}`, pairs: `[]`).
Spans are written grouped by type in schema order (reading order within a type); the loader stores gold spans in
the same canonical order.
"""
from __future__ import annotations

import ast
import json
import re
import unicodedata
from dataclasses import replace
from typing import Any, Literal

from sdelab.design.options import Design
from sdelab.design.sample import Sample, Segment
from sdelab.tasks.task import CLASSIFICATION, UNMENTIONED, Example, Task

ErrorKind = Literal["empty", "unparsable", "unknown_target", "unknown_label", "missing_target", "duplicate_target",
                    "truncated"]
ERROR_KINDS: tuple[str, ...] = ErrorKind.__args__  # type: ignore[attr-defined]

# How designs render, versioned: a cell's id includes it, so a change to what a design writes (revision 2: the SDE
# code's NumLabel scheme, JSON lines, span formats and soft matching) runs the cell again instead of reusing it.
RENDER_REVISION = 2

LANG = {
    "zh": {"colon": "：", "comma": "，", "end": "。", "answer": "答案：", "reason": "理由：", "none": "无",
           "span_placeholder": "无", "aspect_placeholder": "未提及", "types": "；",
           "multi_aspect_keys": ("方面", "情感"), "span_extraction_keys": ("类型", "文本"), "description": "描述",
           "not_mentioned": "评论没有提到这个方面。"},
    "en": {"colon": ": ", "comma": ", ", "end": ".", "answer": "Answer:", "reason": "Reason:", "none": "none",
           "span_placeholder": "none", "aspect_placeholder": "not mentioned", "types": "; ",
           "multi_aspect_keys": ("aspect", "sentiment"), "span_extraction_keys": ("entity_type", "entity_names"),
           "description": "description", "not_mentioned": "The text does not mention it."},
}

HINTS = {  # appended to the instruction, so that No-inst designs carry none of them
    ("zh", "multi_aspect", "natural"): "请用一句话写出各方面的情感，格式为“方面：情感，方面：情感。”",
    ("zh", "multi_aspect", "lines"): "每行写一个方面及其情感，格式为“方面：情感”。",
    ("zh", "multi_aspect", "json"): '每个方面写一行JSON：{"{key}": "方面", "{value}": "情感"}。',
    ("zh", "multi_aspect", "json_object"): "请输出一个JSON对象，键为方面，值为情感。",
    ("en", "multi_aspect", "natural"): "Answer in one sentence: 'aspect: sentiment, aspect: sentiment.'",
    ("en", "multi_aspect", "lines"): "Write one line per aspect: 'aspect: sentiment'.",
    ("en", "multi_aspect", "json"): 'Write one JSON object per line, one per aspect: {"{key}": "aspect", '
                                    '"{value}": "sentiment"}.',
    ("en", "multi_aspect", "json_object"): "Answer with one JSON object mapping each aspect to its sentiment.",
    ("zh", "span_extraction", "natural"): "请用一句话写出找到的内容，每个类型写“类型：文本，文本”，"
                                          "类型之间用“；”隔开。",
    ("zh", "span_extraction", "lines"): "每个类型写一行，格式为“类型：文本，文本”。",
    ("zh", "span_extraction", "json"): '每个类型写一行JSON：{"{key}": "类型", "{value}": ["文本"]}。',
    ("zh", "span_extraction", "json_object"): "请输出一个JSON对象，键为类型，值为文本列表。",
    ("zh", "span_extraction", "pairs"): '每个结果写一行，格式为["类型", "文本"]；没有时写[]。',
    ("en", "span_extraction", "natural"): "For each type, answer 'type: text, text', and join the types with ';'.",
    ("en", "span_extraction", "lines"): "For each type, answer in a line: 'type: text, text'.",
    ("en", "span_extraction", "json"): 'For each type, answer in a line with a JSON object: {"{key}": "type", '
                                       '"{value}": ["text"]}.',
    ("en", "span_extraction", "json_object"): "Answer with one JSON object mapping each type to a list of texts.",
    ("en", "span_extraction", "pairs"): 'Answer in the format ["type", "text"], one per line. If there is none, '
                                        'answer "[]".',
    ("zh", "placeholder"): "没有提到的{what}写“{ph}”。",
    ("en", "placeholder"): "Write '{ph}' for every {what} the text does not mention.",
    ("zh", "omit"): "只写提到的{what}；都没有时写“{none}”。",
    ("en", "omit"): "List only the {what}s the text mentions; write '{none}' if there is none.",
    ("zh", "number"): "用数字表示标签：{pairs}。",
    ("en", "number"): "Use numbers for the labels: {pairs}.",
    ("zh", "aspect_cot"): '每个方面写一行JSON：{"{key}": "方面", "{desc}": "评论对该方面的描述", '
                          '"{value}": "情感"}，先描述，再给出情感。',
    ("zh", "aspect_reverse_cot"): '每个方面写一行JSON：{"{key}": "方面", "{value}": "情感", '
                                  '"{desc}": "评论对该方面的描述"}，先给出情感，再描述。',
    ("en", "aspect_cot"): 'Write one JSON object per line, one per aspect: {"{key}": "aspect", "{desc}": "what the '
                          'text says about it", "{value}": "sentiment"}: the description first, then the sentiment.',
    ("en", "aspect_reverse_cot"): 'Write one JSON object per line, one per aspect: {"{key}": "aspect", "{value}": '
                                  '"sentiment", "{desc}": "what the text says about it"}: the sentiment first, then '
                                  'the description.',
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
    words = list(_label_words(task, design).values())
    if fam == "multi_aspect" and design.labels == "number":
        words.append(task.label_number(UNMENTIONED))
    values = {"targets": L["comma"].join(_target_words(task).values()), "labels": L["comma"].join(map(str, words))}
    hints = []
    own = (task.spec.hints or {}).get(f"{design.output_format}+{design.unmentioned}")
    key, value = json_keys(task)
    if aspect_cot(task, design):  # the SDE code's CoT: a description per aspect inside its JSON line
        hints.append(_fill(HINTS[(lang, "aspect_" + design.reasoning)], {"key": key, "value": value,
                                                                         "desc": L["description"]}))
    elif fam in ("multi_aspect", "span_extraction") and own is not None:  # the task's own wording (the SDE code's)
        hints.append(own)
    elif fam in ("multi_aspect", "span_extraction"):
        hints.append(_fill(HINTS[(lang, fam, design.output_format)], {"key": key, "value": value}))
        if design.output_format != "pairs":
            hints.append(HINTS[(lang, "placeholder" if design.unmentioned == "placeholder" else "omit")].format(
                what=WHAT[(lang, fam)], none=L["none"], ph="[]" if fam == "span_extraction" and design.output_format
                == "json" else _placeholder(task, design)))
    if design.labels == "number" and (fam in CLASSIFICATION or fam == "multi_aspect"):
        words = _label_words(task, None)
        if fam == "multi_aspect":  # the SDE code's scheme: 1 / 0 / -1, and -2 for unmentioned, as in the target
            words[UNMENTIONED] = _placeholder(task, replace(design, labels="text"))
        pairs = L["comma"].join(f"{task.label_number(n)}={w}" for n, w in words.items())
        hints.append(HINTS[(lang, "number")].format(pairs=pairs))
    if design.reasoning != "none" and not aspect_cot(task, design):
        hints.append(HINTS[(lang, design.reasoning)])
    text = _fill(text, values)
    if not hints:
        return text
    return text + "".join(hints) if lang == "zh" else text + " " + " ".join(hints)


def aspect_cot(task: Task, design: Design) -> bool:
    """CoT / R-CoT of multi-aspect sentiment as the SDE code writes it: one JSON line per aspect with a description
    field before (CoT) or after (R-CoT) the sentiment, whatever the output format option says."""
    return task.spec.family == "multi_aspect" and design.reasoning != "none"


def response_text(task: Task, design: Design, example: Example) -> str:
    if not aspect_cot(task, design):
        answer = answer_text(task, design, example.gold)
    if design.reasoning == "none":
        return answer
    if not example.rationale:
        raise MissingRationale(f"example {example.id} has no rationale, which design '{design.name}' needs")
    L = LANG[task.spec.language]
    if aspect_cot(task, design):
        key, value = json_keys(task)
        desc = descriptions(task, example.rationale)
        whole = " ".join(example.rationale.split())  # a rationale that is not per aspect describes every one
        lines = []
        for (k, v), t in zip(_items(task, replace(design, unmentioned="placeholder"), example.gold),
                             task.spec.targets):
            if v is None and design.unmentioned == "omit":
                continue
            why = desc.get(t) or (L["not_mentioned"] if v is None else "-" if desc else whole)
            fields = [(key, k), (L["description"], why), (value, _json_value(task, design, v))]
            if design.reasoning == "reverse_cot":
                fields = [fields[0], fields[2], fields[1]]
            lines.append(json.dumps(dict(fields), ensure_ascii=False))
        return "\n".join(lines) or "{}"
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
    fmt, items = design.output_format, _items(task, design, gold)
    key, value = json_keys(task)
    if fam == "span_extraction" and fmt == "pairs":
        sep = (task.spec.pairs_separator, ": ")
        return "\n".join(json.dumps([k, v], ensure_ascii=False, separators=sep) for k, v in items if v is not None) \
            or "[]"
    if fam == "span_extraction":  # one group per type: (type, [texts]) in schema order, [] for PU's empty types
        groups: dict[str, list[str]] = {}
        for k, v in items:
            groups.setdefault(k, [])
            if v is not None:
                groups[k].append(v)
        items = list(groups.items())
    if fmt == "json_object":
        return json.dumps({k: _json_value(task, design, v) for k, v in items}, ensure_ascii=False)
    if not items:
        return "{}" if fmt == "json" else L["none"]
    if fmt == "json":
        return "\n".join(json.dumps({key: k, value: _json_value(task, design, v)}, ensure_ascii=False)
                         for k, v in items)
    if fam == "span_extraction":
        q = _quoted if task.spec.quote_spans else _bare
        strs = [(q(k), L["comma"].join(map(q, v)) if v else q(_placeholder(task, design))) for k, v in items]
        return (L["types"] if fmt == "natural" else "\n").join(f"{k}{L['colon']}{v}" for k, v in strs)
    strs = [(k, _placeholder(task, design) if v is None else str(v)) for k, v in items]
    if fmt == "lines":
        return "\n".join(f"{k}{L['colon']}{v}" for k, v in strs)
    return L["comma"].join(f"{k}{L['colon']}{v}" for k, v in strs) + L["end"]


def json_keys(task: Task) -> tuple[str, str]:
    """The two keys of the JSON output's objects: the task's, else the family's in its language."""
    return tuple(task.spec.json_keys or LANG[task.spec.language].get(f"{task.spec.family}_keys", ("", "")))


def _json_value(task: Task, design: Design, v: Any) -> Any:
    """An aspect's label (PU's placeholder for None; -2 under NumLabel) or a type's list of texts, for JSON."""
    if isinstance(v, list):
        return v
    if v is None:
        return task.label_number(UNMENTIONED) if design.labels == "number" else _placeholder(task, design)
    return v


def _quoted(s: str) -> str:
    """A text quoted as the SDE code's str(list) wrote it: 'x', or "x" when it holds a single quote."""
    return repr(str(s))


def descriptions(task: Task, rationale: str) -> dict[str, str]:
    """Per-aspect descriptions from a rationale: a JSON object {aspect: text} or 'aspect: text' lines (as the
    teacher is asked to write them); aspects named by their word, name or alias. {} when it is neither."""
    obj = _literal(rationale.strip())
    pairs = [(str(k), v) for k, v in obj] if isinstance(obj, list) and all(isinstance(x, tuple) for x in obj) else \
        [(m.group(1), m.group(2)) for m in re.finditer(r"^\s*(.+?)\s*[:：]\s*(.+)$", rationale, re.M)]
    targets = _target_table(task)
    return {targets[_norm(k)]: " ".join(str(v).split()) for k, v in pairs if _norm(k) in targets and str(v).strip()}


def _bare(s: str) -> str:
    """A text as it is, unless it could not be read back bare (a comma, a quote first, spaces around)."""
    s = str(s)
    return _quoted(s) if not s or s != s.strip() or re.search(r"[,，]", s) or s[:1] in "'\"" or s[-1:] in ";；" else s


def _items(task: Task, design: Design, gold: Any) -> list[tuple[str, Any]]:
    """(target as written, value as written or None for a placeholder), in schema order."""
    words, out = _target_words(task), []
    pu = design.unmentioned == "placeholder"
    if task.spec.family == "multi_aspect":
        labels = _label_words(task, design)
        for t in task.spec.targets:
            if gold[t] == UNMENTIONED:
                if pu:
                    out.append((words[t], None))
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
    """What PU writes for an unmentioned target: under NumLabel an aspect's number (-2), else the task's word."""
    if task.spec.family == "multi_aspect" and design.labels == "number":
        return str(task.label_number(UNMENTIONED))
    if task.spec.placeholder is not None:
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
    if aspect_cot(task, design):  # JSON lines whose description field the parser does not need
        return _parse_items(task, replace(design, output_format="json", reasoning="none"), text)
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
    """(key as written, value as written: a label, or a list of texts for a span type) pairs, in the design's
    format, plus an error if the text does not have that format at all."""
    L, fmt, spans = LANG[task.spec.language], design.output_format, task.spec.family == "span_extraction"
    a = answer.strip()
    if _norm(a) == _norm(L["none"]) or a in ("{}", "[]"):
        return [], None
    if fmt == "json_object":
        obj = _literal(a[a.find("{"):a.rfind("}") + 1])
        return ([(str(k), v) for k, v in obj], None) if isinstance(obj, list) else ([], "unparsable")
    if fmt in ("json", "pairs"):  # one JSON object / ["type", "text"] array per line
        key, value = json_keys(task)
        items, bad = [], False
        for ln in a.splitlines():
            obj = _literal(ln.strip()) if ln.strip() else None
            if isinstance(obj, list) and obj and all(isinstance(x, tuple) for x in obj):
                obj = dict(obj)
            if fmt == "json" and isinstance(obj, dict) and key in obj and value in obj:
                items.append((str(obj[key]), obj[value]))
            elif fmt == "pairs" and isinstance(obj, list) and len(obj) == 2 and all(isinstance(x, str) for x in obj):
                items.append((obj[0], [obj[1]]))
            elif ln.strip() and obj != []:
                bad = True
        return items, ("unparsable" if bad or not items else None)
    if fmt == "lines":
        items, bad = [], False
        for ln in a.splitlines():
            if not ln.strip():
                continue
            m = re.match(r"\s*(.+?)\s*[:：]\s*(.*)$", ln)
            if m:
                items.append((m.group(1), _texts(m.group(2)) if spans else m.group(2).strip()))
            else:
                bad = True
        return items, ("unparsable" if bad or not items else None)
    # natural: find '<known target><colon>' anchors (a target may be quoted); values run to the next anchor
    words = sorted({w for w in _target_words(task).values()} | set(task.spec.targets or ()) |
                   {a for n in task.spec.targets or () for a in task.spec.aliases.get(n, [])}, key=len, reverse=True)
    text = a
    pat = re.compile(r"(?:^|(?<=[,，;；。.\s]))['\"]?(" + "|".join(re.escape(w) for w in words) + r")['\"]?\s*[:：]\s*",
                     flags=re.IGNORECASE)
    anchors = list(pat.finditer(text))
    if not anchors:
        return [], ("unknown_target" if re.search(r"[:：]", a) else "unparsable")
    items = []
    lead = text[: anchors[0].start()].strip(" ,，;；。.")
    for i, m in enumerate(anchors):
        end = anchors[i + 1].start() if i + 1 < len(anchors) else len(text)
        value = re.sub(r"[\s,，;；]+$", "", text[m.end():end].strip())
        if i + 1 == len(anchors) and not spans:  # (an aspect sentence ends with a full stop; spans do not)
            value = re.sub(r"[。.]$", "", value).strip()
        items.append((m.group(1), _texts(value) if spans else value))
    return items, ("unknown_target" if lead else None)


def _literal(text: str) -> Any:
    """A JSON (or Python-literal: the SDE code's outputs use single quotes) value, pairs of a dict kept as a list;
    None when the text is not one. Never evaluates code."""
    try:
        return json.loads(text, object_pairs_hook=list)
    except (json.JSONDecodeError, RecursionError):
        pass
    try:
        obj = ast.literal_eval(text) if len(text) < 100_000 else None
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    return list(obj.items()) if isinstance(obj, dict) else obj


_TEXT = re.compile(r"""\s*('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^,，]+?)\s*(?:[,，]|$)""")


def _texts(value: str) -> list[str]:
    """The texts of one span type as written: comma-separated, each bare or quoted ('a', "b's", 'x, y')."""
    out = []
    for m in _TEXT.finditer(value.strip()):
        tok = m.group(1)
        out.append(str(_literal(tok) or "") if tok[:1] in "'\"" and len(tok) > 1 and tok[-1] == tok[0] else tok.strip())
    return [x for x in out if x.strip()]


def _parse_items(task: Task, design: Design, answer: str) -> tuple[Any, str | None]:
    raw, fmt_err = _raw_items(task, design, answer)
    targets, labels = _target_table(task), _label_table(task, design)
    fam, pu = task.spec.family, design.unmentioned == "placeholder" and design.output_format != "pairs"
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
