"""Readers for published data-set layouts (XML, nested JSON, ...), registered as extra `format:` names.

Each reader takes the file's text and path and returns `Row`s whose values follow the family conventions:
- multi_aspect: a "text" column plus one column per aspect holding the raw label (the task maps raw values with
  `label_map`, and its `columns` map aspect names to these columns);
- span_extraction: a "text" column plus "spans", a JSON list of [type, text] pairs.
Errors name the file and line (sdelab.errors.SdelabError).

Registered layouts (docs/data.md says which task uses which, with row counts):
- absa_xml          SemEval-2014 / MAMS (<aspectCategories>) and SemEval-2016 SB1 (<Opinions>) XML;
- sentihood         SentiHood JSON: one row per (sentence, target location);
- genia             GENIA nested NER: a JSON array of {tokens, entities} or concatenated DyGIE-style documents;
- genia_minus_test  the same, dropping sentences whose text occurs in genia_test.json next to the file;
- maven_sde         the Sample Design Engineering code's MAVEN jsonl ({"input": prompt, "output": gold lines});
- sde_masa          the Sample Design Engineering code's MASA prediction jsonl ({"prompt", "target", ...}).
"""
from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Callable, Iterable

from sdelab.errors import SdelabError
from sdelab.tasks import readers
from sdelab.tasks.readers import Row, jsonl_objects

UNMENTIONED_RAW = "unmentioned"  # the raw value the readers write for an aspect a sentence does not mention
CONFLICT_RAW = "conflict"  # the raw value of an aspect with both positive and negative opinions
OUT_OF_SCOPE_RAW = "out_of_scope"  # SemEval-2016 sentences marked OutOfScope (not annotated): drop them


LAYOUTS: dict[str, Callable] = {}  # format name -> fn(text, path) -> list[Row]; FORMATS adds the plain ones


def register(name: str) -> Callable:
    def deco(fn):
        LAYOUTS[name] = fn
        return fn
    return deco


# ------------------------------------------------------------------------------------------------ helpers ---
def combine_polarities(pols: Iterable[str]) -> str:
    """One polarity for several opinions on the same aspect: all equal -> that one; a neutral next to one
    non-neutral polarity -> the non-neutral one; positive with negative (or an annotated 'conflict') ->
    'conflict'."""
    s = {p.strip().lower() for p in pols}
    if len(s) == 1:
        return s.pop()
    if CONFLICT_RAW in s:
        return CONFLICT_RAW
    rest = s - {"neutral"}
    return rest.pop() if len(rest) == 1 else CONFLICT_RAW


def _line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _json_values(text: str, path: Path) -> list[tuple[int, Any]]:
    """(line, value) for every item of a top-level JSON array, or for every value of a file of concatenated JSON
    values (one or more objects one after the other, as DyGIE-style files are)."""
    dec, out, i, n = json.JSONDecoder(), [], 0, len(text)

    def skip(j: int) -> int:
        while j < n and text[j] in " \t\r\n":
            j += 1
        return j

    def decode(j: int) -> tuple[Any, int]:
        try:
            return dec.raw_decode(text, j)
        except json.JSONDecodeError as e:
            raise SdelabError(f"malformed JSON ({e.msg} at column {e.colno})", path=path, line=e.lineno) from None

    i = skip(i)
    if i < n and text[i] == "[":
        i = skip(i + 1)
        while i < n and text[i] != "]":
            obj, end = decode(i)
            out.append((_line_of(text, i), obj))
            i = skip(end)
            if i < n and text[i] == ",":
                i = skip(i + 1)
            elif i < n and text[i] != "]":
                raise SdelabError("malformed JSON (expected ',' or ']' between array items)", path=path,
                                  line=_line_of(text, i))
        if i >= n:
            raise SdelabError("malformed JSON (the array is not closed)", path=path, line=_line_of(text, n))
        i = skip(i + 1)
        if i < n:
            raise SdelabError("malformed JSON (text after the array)", path=path, line=_line_of(text, i))
        return out
    while i < n:
        obj, end = decode(i)
        out.append((_line_of(text, i), obj))
        i = skip(end)
    return out


def _need(obj: dict, key: str, typ: type | tuple, path: Path, line: int):
    if key not in obj:
        raise SdelabError(f"missing key '{key}' (keys: {', '.join(map(str, obj)) or 'none'})", path=path,
                          line=line)
    v = obj[key]
    if not isinstance(v, typ):
        want = typ.__name__ if isinstance(typ, type) else " or ".join(t.__name__ for t in typ)
        raise SdelabError(f"'{key}' must be a {want}, got {type(v).__name__}", path=path, line=line)
    return v


def _spans_json(spans: list[tuple[str, str]]) -> str:
    return json.dumps([list(s) for s in spans], ensure_ascii=False)


def _unique_ids(rows: list[Row]) -> list[Row]:
    """Make the 'id' values unique (a suffix #2, #3 ... on repeats), so examples can be told apart."""
    seen: Counter = Counter()
    out = []
    for r in rows:
        rid = r.values.get("id")
        if rid:
            seen[rid] += 1
            if seen[rid] > 1:
                r = Row({**r.values, "id": f"{rid}#{seen[rid]}"}, r.line)
        out.append(r)
    return out


# ------------------------------------------------------------------------------------------------ absa_xml ---
SEMEVAL16_ENTITIES = ("RESTAURANT", "FOOD", "DRINKS", "AMBIENCE", "SERVICE", "LOCATION")


def _xml_root(text: str, path: Path) -> ET.Element:
    try:
        return ET.fromstring(text)
    except ET.ParseError as e:
        line = e.position[0] if getattr(e, "position", None) else None
        raise SdelabError(f"malformed XML ({e})", path=path, line=line) from None


def _tag_lines(text: str, tag: str) -> list[int]:
    """Lines of the start tags <tag ...> in document order (ElementTree keeps no line numbers)."""
    return [_line_of(text, m.start()) for m in re.finditer(rf"<{tag}(?=[\s/>])", text)]


@register("absa_xml")
def read_absa_xml(text: str, path: Path) -> list[Row]:
    """Aspect-category sentiment XML, one row per <sentence>: "text", "id" (when the sentence has one) and one
    column per category holding its polarity, or 'unmentioned' when the sentence has no opinion on it.

    - SemEval-2014 / MAMS: <aspectCategory category=.. polarity=..>; the columns are the categories that occur
      in the file (e.g. food, service, price, ambience, anecdotes/miscellaneous).
    - SemEval-2016 SB1: <Opinion category="ENTITY#ATTRIBUTE" polarity=..>; one column per ENTITY (always the six
      of the guidelines: RESTAURANT, FOOD, DRINKS, AMBIENCE, SERVICE, LOCATION) and one per ENTITY#ATTRIBUTE that
      occurs in the file. A sentence marked OutOfScope="TRUE" was not annotated: all its columns are
      'out_of_scope' (list it in the task's drop_labels).
    Several opinions on one column combine with `combine_polarities` (mixed positive/negative -> 'conflict').
    """
    root = _xml_root(text, path)
    sentences = list(root.iter("sentence"))
    if not sentences:
        raise SdelabError("no <sentence> elements (expected SemEval/MAMS aspect-category XML)", path=path)
    lines = _tag_lines(text, "sentence")
    if len(lines) != len(sentences):
        lines = [1] * len(sentences)
    semeval16 = root.find(".//Opinion") is not None or root.tag == "Reviews"
    parsed: list[tuple[int, str, str | None, dict[str, list[str]], bool]] = []
    columns: list[str] = list(SEMEVAL16_ENTITIES) if semeval16 else []
    for s, line in zip(sentences, lines):
        t = s.find("text")
        if t is None or not (t.text or "").strip():
            raise SdelabError("a <sentence> without a <text>", path=path, line=line)
        out_of_scope = (s.get("OutOfScope") or "").strip().upper() == "TRUE"
        pols: dict[str, list[str]] = defaultdict(list)
        items = s.findall("Opinions/Opinion") if semeval16 else s.findall("aspectCategories/aspectCategory")
        for it in items:
            cat, pol = it.get("category"), it.get("polarity")
            if not cat or not pol:
                raise SdelabError(f"<{it.tag}> needs 'category' and 'polarity' attributes", path=path, line=line)
            cat = cat.strip()
            if cat in ("text", "id"):
                raise SdelabError(f"category '{cat}' clashes with the reader's own columns", path=path, line=line)
            keys = [cat.split("#")[0], cat] if semeval16 else [cat]
            for k in keys:
                pols[k].append(pol)
                if k not in columns:
                    columns.append(k)
        parsed.append((line, t.text.strip(), s.get("id"), pols, out_of_scope))
    rows = []
    for line, sent, sid, pols, oos in parsed:
        values = {"text": sent}
        if sid:
            values["id"] = sid
        for c in columns:
            values[c] = OUT_OF_SCOPE_RAW if oos else (combine_polarities(pols[c]) if c in pols
                                                      else UNMENTIONED_RAW)
        rows.append(Row(values, line))
    return rows


# ----------------------------------------------------------------------------------------------- sentihood ---
SENTIHOOD_ASPECTS = ("general", "price", "safety", "transit-location", "live", "nightlife", "shopping",
                     "multicultural", "green-nature", "dining", "quiet", "touristy")
_LOCATION = re.compile(r"LOCATION\d+")  # no word boundaries: the data has glued forms like "LOCATION1the"


@register("sentihood")
def read_sentihood(text: str, path: Path) -> list[Row]:
    """SentiHood JSON: one row per (sentence, target location) for every LOCATIONn named in the sentence (or in
    its opinions). Columns: "text" = "Target: LOCATIONn\\nSentence: <sentence>" (the single input field of a
    multi_aspect task names the target), "sentence", "target", "id" = "<sentence id>-LOCATIONn", and one column
    per aspect (the 12 SentiHood aspects plus any other found) holding Positive / Negative, or 'unmentioned'
    for an aspect with no opinion about this target. Whitespace in the sentence is collapsed."""
    items = _json_values(text, path)
    aspects = list(SENTIHOOD_ASPECTS)
    parsed = []
    for line, obj in items:
        if not isinstance(obj, dict):
            raise SdelabError(f"expected a JSON object, got {type(obj).__name__}", path=path, line=line)
        sent = " ".join(_need(obj, "text", str, path, line).split())
        if not sent:
            raise SdelabError("empty text", path=path, line=line)
        ops: dict[tuple[str, str], list[str]] = defaultdict(list)
        for op in _need(obj, "opinions", list, path, line):
            if not isinstance(op, dict) or not all(isinstance(op.get(k), str) for k in
                                                   ("target_entity", "aspect", "sentiment")):
                raise SdelabError("an opinion needs string 'target_entity', 'aspect' and 'sentiment'", path=path,
                                  line=line)
            ops[(op["target_entity"].strip(), op["aspect"].strip())].append(op["sentiment"].strip())
            if op["aspect"].strip() not in aspects:
                aspects.append(op["aspect"].strip())
        targets = sorted(set(_LOCATION.findall(sent)) | {t for t, _ in ops}, key=lambda t: (len(t), t))
        if not targets:
            raise SdelabError("a sentence that names no target (LOCATION1, LOCATION2, ...)", path=path, line=line)
        parsed.append((line, str(obj.get("id", "")), sent, targets, ops))
    rows = []
    for line, sid, sent, targets, ops in parsed:
        for tgt in targets:
            values = {"id": f"{sid}-{tgt}" if sid else "", "text": f"Target: {tgt}\nSentence: {sent}",
                      "sentence": sent, "target": tgt}
            for a in aspects:
                pols = ops.get((tgt, a))
                values[a] = combine_polarities(pols) if pols else UNMENTIONED_RAW
            rows.append(Row(values, line))
    return rows


# --------------------------------------------------------------------------------------------------- genia ---
GENIA_TYPES = ("protein", "dna", "rna", "cell_line", "cell_type")


def genia_type(raw: str) -> str:
    """GENIA type spellings -> the five type names: 'DNA', 'G#DNA_domain_or_region', 'cell-line', 'Cell type',
    'protein_molecule' ... -> dna, dna, cell_line, cell_type, protein. Anything else is returned unchanged (the
    task then names it as outside its schema)."""
    t = re.sub(r"[\s\-]+", "_", raw.strip()).lower()
    t = t[2:] if t.startswith("g#") else t
    for name in ("cell_line", "cell_type", "protein", "dna", "rna"):
        if t == name or t.startswith(name + "_"):
            return name
    return raw


def _genia_row(tokens: Any, ents: list[tuple[int, int, str]], rid: str, path: Path, line: int) -> Row:
    if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens) or not tokens:
        raise SdelabError("'tokens' must be a non-empty list of strings", path=path, line=line)
    spans = []
    for s, e, typ in ents:
        if not (isinstance(s, int) and isinstance(e, int) and 0 <= s < e <= len(tokens)):
            raise SdelabError(f"entity [{s}, {e}) of type '{typ}' is outside the sentence ({len(tokens)} tokens; "
                              "'end' is exclusive)", path=path, line=line)
        spans.append((s, e, genia_type(str(typ))))
    spans.sort(key=lambda x: (x[0], x[1]))
    return Row({"id": rid, "text": " ".join(tokens),
                "spans": _spans_json([(typ, " ".join(tokens[s:e])) for s, e, typ in spans])}, line)


@register("genia")
def read_genia(text: str, path: Path) -> list[Row]:
    """GENIA nested NER, one row per sentence: "text" = the tokens joined with single spaces, "spans" = the
    entities as [type, tokens joined with spaces] in reading order (so every span text is a substring of the
    text), "id". Two layouts, told apart per object:
    - {"tokens": [...], "entities": [{"start", "end", "type"}], "org_id"} (Sequence2Set/PIQN genia_test.json);
    - {"doc_key", "sentences": [[...]], "ner": [[[start, end, type], ...]]} (DyGIE-style, e.g. GTR-NNER's
      dev.json), offsets counted over the document's tokens.
    In both, 'end' is EXCLUSIVE (checked on sodner_split_dev.json: its 57 sentences shared with genia_test.json
    have identical entities only when read this way). Types are mapped with `genia_type`."""
    rows = []
    for line, obj in _json_values(text, path):
        if not isinstance(obj, dict):
            raise SdelabError(f"expected a JSON object, got {type(obj).__name__}", path=path, line=line)
        if "tokens" in obj:
            ents = []
            for en in _need(obj, "entities", list, path, line):
                if not isinstance(en, dict) or not {"start", "end", "type"} <= set(en):
                    raise SdelabError("an entity needs 'start', 'end' and 'type'", path=path, line=line)
                ents.append((en["start"], en["end"], en["type"]))
            rid = str(obj.get("org_id") or obj.get("id") or "")
            rows.append(_genia_row(obj["tokens"], ents, rid, path, line))
        elif "sentences" in obj:
            sents = _need(obj, "sentences", list, path, line)
            ner = obj.get("ner", [[] for _ in sents])
            if not isinstance(ner, list) or len(ner) != len(sents):
                raise SdelabError(f"'ner' must hold one list per sentence ({len(sents)})", path=path, line=line)
            offset, doc = 0, str(obj.get("doc_key") or "")
            for k, (toks, ents) in enumerate(zip(sents, ner)):
                if not isinstance(ents, list) or not all(isinstance(x, list) and len(x) >= 3 for x in ents):
                    raise SdelabError("'ner' entries must be [start, end, type]", path=path, line=line)
                local = [(x[0] - offset, x[1] - offset, x[2]) if isinstance(x[0], int) and isinstance(x[1], int)
                         else (x[0], x[1], x[2]) for x in ents]
                rows.append(_genia_row(toks, local, f"{doc}" if len(sents) == 1 else f"{doc}/{k}", path, line))
                offset += len(toks) if isinstance(toks, list) else 0
        else:
            raise SdelabError("expected an object with 'tokens' (+ 'entities') or 'sentences' (+ 'ner')",
                              path=path, line=line)
    return _unique_ids(rows)


GENIA_TEST_FILE = "genia_test.json"


@register("genia_minus_test")
def read_genia_minus_test(text: str, path: Path) -> list[Row]:
    """`genia`, without the sentences whose text also occurs in genia_test.json in the same folder (to train on
    another split's dev set without leaking test sentences)."""
    test_path = path.parent / GENIA_TEST_FILE
    if not test_path.exists():
        raise SdelabError(f"genia_minus_test needs {GENIA_TEST_FILE} next to the file", path=test_path)
    if test_path.resolve() == path.resolve():
        raise SdelabError(f"genia_minus_test would drop every sentence of {GENIA_TEST_FILE} itself", path=path)
    test_texts = {r.values["text"] for r in read_genia(readers.read_text(test_path), test_path)}
    return [r for r in read_genia(text, path) if r.values["text"] not in test_texts]


# ----------------------------------------------------------------------------------------------- maven_sde ---
_MAVEN_SENTENCE = re.compile(r"The sentence is:\s*(.*?)\s*Output:\s*$", re.S)


@register("maven_sde")
def read_maven_sde(text: str, path: Path) -> list[Row]:
    """The SDE code's MAVEN event-detection jsonl: {"input": prompt ending 'The sentence is: <s> Output:',
    "output": one '["Event_type", "trigger"]' line per event, or '[]'}. Columns: "text" = the sentence,
    "spans" = [[event type in lower case, trigger], ...] in the order given, "prompt" = the original prompt."""
    rows = []
    for line, obj in jsonl_objects(text, path):
        prompt = _need(obj, "input", str, path, line)
        m = _MAVEN_SENTENCE.search(prompt)
        if not m or not m.group(1).strip():
            raise SdelabError("cannot find 'The sentence is: ... Output:' in the input prompt", path=path,
                              line=line, field="input")
        sent = m.group(1).strip()
        spans = []
        for gl in _need(obj, "output", str, path, line).splitlines():
            if not gl.strip():
                continue
            try:
                item = json.loads(gl)
            except json.JSONDecodeError:
                raise SdelabError(f"gold line {gl.strip()!r} is not JSON", path=path, line=line,
                                  field="output") from None
            if item == []:
                continue
            if not (isinstance(item, list) and len(item) == 2 and all(isinstance(x, str) for x in item)):
                raise SdelabError(f"gold line {gl.strip()!r} is not [\"type\", \"trigger\"]", path=path, line=line,
                                  field="output")
            spans.append((item[0].strip().lower(), item[1].strip()))
        rows.append(Row({"text": sent, "spans": _spans_json(spans), "prompt": prompt}, line))
    return rows


# ------------------------------------------------------------------------------------------------ sde_masa ---
_MASA_SEP = "\n---\n"
_MASA_ASPECTS = re.compile(r"观察以下这些方面[：:](.*?)[。\n]")
_MASA_ITEM = re.compile(r"^\s*([^：:]+?)\s*[：:]\s*(\S+?)\s*$")
MASA_UNMENTIONED = "未提及"


def _masa_pairs(s: str, path: Path, line: int, key: str) -> dict[str, str]:
    out = {}
    for part in re.split(r"[，,；;\n]", s.strip().rstrip("。.")):
        if not part.strip():
            continue
        m = _MASA_ITEM.match(part)
        if not m:
            raise SdelabError(f"cannot read '{part.strip()}' as '方面：情感'", path=path, line=line, field=key)
        out[m.group(1)] = m.group(2)
    return out


@register("sde_masa")
def read_sde_masa(text: str, path: Path) -> list[Row]:
    """The SDE code's MASA prediction jsonl ({"prompt": review + '\\n---\\n' + instruction, "target":
    '食品评价：正面，饮品评价：未提及，...。', "prediction": ...}), instruction-last prompts. Columns: "text" = the
    review, one column per aspect named in the instruction ('观察以下这些方面：...') or the target, holding
    正面/负面/中性/未提及 (an aspect named in the instruction but absent from the target = 未提及), and
    "model_prediction" = the prediction text stored in the file (if any)."""
    parsed, aspects = [], []
    for line, obj in jsonl_objects(text, path):
        prompt = _need(obj, "prompt", str, path, line)
        if _MASA_SEP not in prompt:
            raise SdelabError("the prompt has no '---' line between the review and the instruction", path=path,
                              line=line, field="prompt")
        review, _, instr = prompt.rpartition(_MASA_SEP)
        if not review.strip():
            raise SdelabError("empty review before '---'", path=path, line=line, field="prompt")
        listed = []
        m = _MASA_ASPECTS.search(instr)
        if m:
            listed = [a.strip() for a in re.split(r"[，,、]", m.group(1)) if a.strip()]
        gold = _masa_pairs(_need(obj, "target", str, path, line), path, line, "target")
        if not gold:
            raise SdelabError("empty target", path=path, line=line, field="target")
        for a in listed + list(gold):
            if a not in aspects:
                aspects.append(a)
        parsed.append((line, review.strip(), gold, obj.get("prediction")))
    rows = []
    for line, review, gold, pred in parsed:
        values = {"text": review}
        for a in aspects:
            values[a] = gold.get(a, MASA_UNMENTIONED)
        if isinstance(pred, str):
            values["model_prediction"] = pred
        rows.append(Row(values, line))
    return rows


FORMATS: dict[str, Callable] = {**readers.READERS, **LAYOUTS}  # every `format:` a task may name


def read_rows(path: str | Path, fmt: str | None = None, columns: dict[str, str] | None = None) -> list[Row]:
    """Rows of a data file in a plain format or a data-set layout (readers.read_rows with FORMATS)."""
    return readers.read_rows(path, fmt, columns, FORMATS)


__all__ = ["register", "read_rows", "FORMATS", "Row", "Path", "combine_polarities", "genia_type", "UNMENTIONED_RAW",
           "CONFLICT_RAW", "OUT_OF_SCOPE_RAW", "SEMEVAL16_ENTITIES", "SENTIHOOD_ASPECTS", "GENIA_TYPES"]
