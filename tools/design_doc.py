"""Write docs/design-options.md: every design option with a sample rendered by sdelab itself, in Chinese and
English. `python tools/design_doc.py` rewrites the file; tests/unit/test_docs.py checks it is current."""
from __future__ import annotations

import sys
from pathlib import Path

from sdelab.design import get_design, render
from sdelab.design.options import Design, OPTIONS
from sdelab.tasks.task import UNMENTIONED, Example, Task, TaskSpec

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "design-options.md"

ZH = Task(TaskSpec.model_validate({
    "name": "masa-zh", "family": "multi_aspect", "language": "zh", "inputs": ["text"],
    "labels": {"positive": "正面", "neutral": "中性", "negative": "负面"},
    "label_numbers": {"positive": 1, "neutral": 0, "negative": -1, "unmentioned": -2},
    "targets": {"food": "食品评价", "price": "价格水平", "hygiene": "卫生情况"},
    "templates": [{"name": "t", "instruction": "请判断评论中各方面的情感：{targets}。",
                   "complex": "任务：多方面情感分析。方面：{targets}。标签：{labels}。“正面”表示满意，“负面”表示不满，"
                              "“中性”表示提到但无明显倾向。",
                   "input": "评论：{text}"}],
    "splits": {"train": {"path": "-"}}}))
EN = Task(TaskSpec.model_validate({
    "name": "masa-en", "family": "multi_aspect", "language": "en", "inputs": ["text"],
    "labels": {"positive": "positive", "neutral": "neutral", "negative": "negative"},
    "targets": {"food": "food", "service": "service", "price": "price"},
    "templates": [{"name": "t", "instruction": "Give the sentiment of each aspect: {targets}.",
                   "complex": "Task: aspect sentiment. Aspects: {targets}. Labels: {labels}. 'positive' means "
                              "satisfied, 'negative' dissatisfied, 'neutral' mentioned without a leaning.",
                   "input": "Review: {text}"}],
    "splits": {"train": {"path": "-"}}}))
ZH_EX = [Example("z1", {"text": "菜很好吃，就是有点贵。"}, {"food": "positive", "price": "negative", "hygiene": UNMENTIONED},
                 rationale="“好吃”说明食品正面，“有点贵”说明价格负面，卫生没有提到。"),
         Example("z2", {"text": "环境干净，价格公道。"}, {"food": UNMENTIONED, "price": "positive", "hygiene": "positive"},
                 rationale="“干净”是卫生正面，“公道”是价格正面。")]
EN_EX = [Example("e1", {"text": "Great pasta, but the waiter ignored us."},
                 {"food": "positive", "service": "negative", "price": UNMENTIONED},
                 rationale="'Great pasta' praises the food; being ignored is bad service; price is not mentioned."),
         Example("e2", {"text": "Cheap and quick."}, {"food": UNMENTIONED, "service": "positive", "price": "positive"},
                 rationale="'Cheap' is about price, 'quick' about service.")]

DOC = {
    "instruction": "Where the instruction goes: before the input (Inst-first), after it (Inst-last), or nowhere "
                   "(No-inst; the model learns the task from the data alone).",
    "input_loss": "MI: the loss also covers the instruction and input tokens; No-MI: only the response (+ EOS). "
                  "The rendered text is the same; what is trained differs (`sdelab render` shows it in green).",
    "output_format": "How several predictions are written: one sentence (Natural), one `target: value` per line "
                     "(Lines), one JSON object per aspect or type per line (JSON, as the SDE code), one JSON object "
                     "for the whole answer (`json_object`, sdelab's own), or one `[\"type\", \"text\"]` per line "
                     "(`pairs`, spans only: the SDE code's heuristic NER and event-detection format). Spans are "
                     "grouped by type in Natural, Lines and JSON (GENIA's and MAVEN's renderings are below).",
    "unmentioned": "PU: every target is written, unmentioned ones with a placeholder; OU: only the mentioned "
                   "targets (an answer with none is `无` / `none`).",
    "labels": "TxtLabel: words; NumLabel: numbers, 1 / 0 / -1 and -2 for an unmentioned aspect, in the instruction "
              "and the target alike (the SDE code's `text_num`).",
    "reasoning": "No-CoT; CoT: for multi-aspect sentiment one JSON line per aspect with a description before the "
                 "sentiment, elsewhere the rationale, then `答案：`/`Answer:` and the answer; R-CoT: the description "
                 "after the sentiment, or the answer, then `理由：`/`Reason:` and the rationale. Rationales come from "
                 "a data column or a teacher model (asked for one line per mentioned aspect on multi-aspect tasks).",
    "prompt_style": "concise: the template's one-line instruction; complex: its `complex:` text (task "
                    "definition, label definitions, what counts as a match).",
    "demo_selection": "With `demos: k` (FTICL), k solved examples precede the input in every training and test "
                      "sample: the same k for all (fixed), k drawn per sample (random, seeded), or the k nearest "
                      "by TF-IDF or BM25 (similar); never the sample itself.",
    "demo_similarity": "How `similar` demonstrations are ranked: TF-IDF cosine, or Okapi BM25.",
}


# What the papers found for each option: each claim id is checked against this project's runs in
# docs/results/findings.md (docs/results/claims.yaml; a test keeps the ids in step).
FINDINGS = {
    "instruction": "SDE: Inst-first beats Inst-last, and an instruction beats none "
                   "(`sde-inst-first-en`, `sde-no-inst-en`, `sde-inst-first-zh`, `sde-no-inst-zh`).",
    "input_loss": "SDE: No-MI beats MI (`sde-no-mi-en`, `sde-no-mi-zh`).",
    "output_format": "SDE: Lines beats Natural and JSON (`sde-lines-natural-en`, `sde-lines-json-en`, "
                     "`sde-lines-natural-zh`, `sde-lines-json-zh`); JSON costs format errors (`sde-json-errors-en`, "
                     "`sde-json-errors-zh`).",
    "unmentioned": "SDE: PU beats OU (`sde-pu-en`, `sde-pu-zh`); OU costs format errors (`sde-ou-errors-en`, "
                   "`sde-ou-errors-zh`, `measure: format errors`).",
    "labels": "SDE: text labels beat numeric ones (`sde-txt-en`, `sde-txt-zh`); numeric labels cost format errors "
              "(`sde-num-errors-en`, `sde-num-errors-zh`).",
    "reasoning": "SDE: the effect of CoT depends on the task; it helps out-of-domain more than in-domain "
                 "(`sde-cot-ood-en`, `sde-cot-id-en`, `sde-cot-ood-zh`, `sde-cot-id-zh`). STM: teacher-written "
                 "CoT improves short text matching (`stm-cot`).",
    "prompt_style": "STM: once fine-tuned, a complex prompt is no better than a concise one (`stm-prompt-gen`, "
                    "`stm-prompt-cls`). SDE: what makes a good prompt (low perplexity, good zero-shot or in-context "
                    "scores) does not predict a good training sample (`sde-pe-prompt-ppl-en`, "
                    "`sde-pe-output-ppl-en`, `sde-pe-zero-shot-en`, `sde-pe-icl-en`, `sde-pe-zero-shot-zh`, "
                    "`sde-pe-prompt-ppl-zh`).",
    "demo_selection": "GenFT: fine-tuning with in-context demonstrations (FTICL) generalizes better than plain "
                      "fine-tuning on generation tasks (`genft-fticl-summary`, `genft-fticl-question`), but does not "
                      "help classification (`genft-fticl-cls`, `genft-fticl-cls-nli`; GenFT §5.4).",
}
ROBUSTNESS = ("SDE: ES-SDE stays ahead of the heuristic design across training sizes (`sde-es-size-en`, "
              "`sde-es-size-zh`), under sampled decoding (`sde-es-decoding-en`, `eval.decoding`) and with an "
              "instruction wording it was not trained on (`sde-es-wording-en`, `eval.templates`).")
# Which paper or code form each option value reproduces (docs: where sdelab deliberately differs).
FORM = {
    ("instruction", "first"): "SDE Inst-first: the instruction before the input (GENIA `good1`/`default`, MAVEN "
                              "`heuristic`).",
    ("instruction", "last"): "SDE Inst-last: the input first (the MASA baseline `instruction-last`, GENIA `weak1`).",
    ("instruction", "none"): "SDE No-inst (MASA `no-instruction`): the input alone.",
    ("input_loss", False): "SDE No-MI (`--no_prompt_loss 1`): only the response (+ EOS) is trained.",
    ("input_loss", True): "SDE MI (Modeling Input): the prompt tokens are trained too.",
    ("output_format", "natural"): "SDE Natural: MASA `方面：情感，…。`; spans grouped by type, `; ` between types "
                                  "(GENIA `weak1`: `'DNA': 'IL-2 gene'; 'protein': 'IL-2', 'NF-kappa B'`).",
    ("output_format", "lines"): "SDE Lines: MASA `lines-output`, one `方面：情感` per line; spans one type per line "
                                "(GENIA `good1`: `'RNA': ''` for an empty type; MAVEN `Type: NONE`).",
    ("output_format", "json"): "SDE JSON: one object per line, per aspect `{\"方面\": …, \"情感\": …}` (MASA "
                               "`json-output`) or per type `{\"entity_type\": …, \"entity_names\": [...]}` (GENIA "
                               "`good2`; MAVEN `event_type` / `trigger word`).",
    ("output_format", "json_object"): "sdelab's own: one JSON object for the whole answer (revision-1 `json`).",
    ("output_format", "pairs"): "SDE heuristic span format: one `[\"type\", \"text\"]` per line (GENIA `default`, "
                                "MAVEN `heuristic`); `[]` when there is none.",
    ("unmentioned", "placeholder"): "SDE PU: every target written, unmentioned ones with the placeholder.",
    ("unmentioned", "omit"): "SDE OU (MASA `omit-unmentioned`, GENIA `weak1`): only what is mentioned.",
    ("labels", "text"): "SDE TxtLabel.",
    ("labels", "number"): "SDE NumLabel (MASA `numerical-label`): 1 / 0 / -1 / -2.",
    ("reasoning", "none"): "No-CoT.",
    ("reasoning", "cot"): "Multi-aspect: the SDE code's CoT (MASA `cot`), one JSON line per aspect with a description "
                          "before the sentiment (the key `描述` / `description` is sdelab's: the code does not store "
                          "it). Other families: a free rationale, then the answer (the short-text-matching paper's).",
    ("reasoning", "reverse_cot"): "The same with the description after the sentiment (MASA `rev-cot`), or the answer "
                                  "before a free rationale.",
    ("prompt_style", "concise"): "STM concise prompt: the template's instruction.",
    ("prompt_style", "complex"): "STM complex prompt: task and label definitions.",
    ("demo_selection", "fixed"): "GenFT FTICL: the same first k demonstrations in every sample (`train_ptune.py`).",
    ("demo_selection", "random"): "sdelab's own: k demonstrations drawn per sample.",
    ("demo_selection", "similar"): "sdelab's own: the k nearest demonstrations.",
    ("demo_similarity", "tfidf"): "sdelab's own.",
    ("demo_similarity", "bm25"): "sdelab's own.",
}
PRESET_FINDINGS = ("SDE: ES-SDE beats the heuristic design and a weak combination on MASA, nested NER and event "
                   "detection (`sde-es-masa-en`, `sde-es-masa-zh`, `sde-es-genia`, `sde-weak-genia`, `sde-es-maven`, "
                   "`sde-weak-maven`).")


def show(task: Task, design: Design, ex: Example, demos=()) -> str:
    s = render(task, design, ex, list(demos))
    trained = "prompt and response" if design.input_loss else "response"
    return f"```text\n{s.prompt_text}\n---- response ({trained} trained) ----\n{s.response.text}\n```\n"


def build() -> str:
    out = ["# Design options\n",
           "Every option of a sample design, with samples rendered by sdelab itself (this file is generated by "
           "`python tools/design_doc.py`; a test keeps it current). A design is a preset plus one-factor changes, "
           "e.g. `es-sde+json+ou`, or a mapping `{preset: es-sde, output_format: json}`; a study may list "
           "`{one_factor_from: es-sde}` or `{grid: {output_format: [natural, lines, json]}, preset: es-sde}`.\n",
           "Presets: `es-sde` = Inst-first, No-MI, Lines, PU, TxtLabel, No-CoT (the Sample Design Engineering "
           "paper's empirically strong design; GENIA `good1`); `heuristic` = Inst-last, No-MI, Natural, PU, "
           "TxtLabel, No-CoT (the SDE MASA baseline `instruction-last`; GENIA and MAVEN declare theirs: Inst-first, "
           "Pairs, as their `default` / `heuristic`); `weak` = Inst-last, Natural, OU (EW-SDE, GENIA `weak1`); "
           "`inst-first`, `inst-last`, `no-inst` (es-sde with that placement). The presets of the SDE tasks are "
           "rendered at the end. Modifiers: `+inst-first +inst-last +no-inst +mi +no-mi +natural +lines +json "
           "+json-object +pairs +pu +ou +txt "
           "+num +no-cot +cot +rcot +concise +complex +k<N> +fixed +random +similar +tfidf +bm25 +tpl=<name> "
           "+pool=<split>`. What the papers found: " + PRESET_FINDINGS + " " + ROBUSTNESS + "\n",
           "Each option below ends with what the papers found about it; every claim id there is checked against "
           "this project's own runs in [results/findings.md](results/findings.md).\n",
           "JSON is **one object per aspect or type per line**, as the SDE code writes it; the whole-answer object "
           "is `json_object`. Options a task family cannot use (e.g. `json` for a single-label classification, "
           "`pairs` for anything but spans) are refused when asked for explicitly. Since render revision 2 (every "
           "cell's config records it) designs render as the SDE code does; cells of revision 1 run again.\n",
           "| option | values | applies to |\n|---|---|---|\n"]
    from sdelab.design.options import APPLIES
    for key, values in OPTIONS.items():
        fams = [f for f in APPLIES if key in APPLIES[f]]
        out.append(f"| `{key}` | {' / '.join(f'`{v}`' for v in values)} | {', '.join(fams)} |\n")
    from sdelab.design.options import ONLY
    out.append("| `demos` | k ≥ 0 | all |\n| `demo_pool` | a split name | all |\n| `template` | a template name of the "
               "task | all |\n\n")
    for key, values in OPTIONS.items():
        found = f"**What the papers found.** {FINDINGS[key]}\n\n" if key in FINDINGS else ""
        out.append(f"## `{key}`\n\n{DOC[key]}\n\n{found}")
        for v in values:
            form = f"Form: {FORM[(key, v)]}\n\n"
            if (key, v) in ONLY:
                out.append(f"### `{key}: {v}`\n\n{form}For {ONLY[(key, v)]} only: see the SDE tasks below.\n\n")
                continue
            if key.startswith("demo_"):
                d = get_design({key: v, "demos": 1})
                zh, en = show(ZH, d, ZH_EX[0], [ZH_EX[1]]), show(EN, d, EN_EX[0], [EN_EX[1]])
            else:
                d = get_design({key: v})
                zh, en = show(ZH, d, ZH_EX[0]), show(EN, d, EN_EX[0])
            out.append(f"### `{key}: {v}` (`{d.name}`)\n\n{form}中文:\n\n{zh}\nEnglish:\n\n{en}\n")
    out.append("## `template`\n\nA task lists several wordings (`templates:` in its YAML); `template: NAME` picks "
               "one, so a model trained on one wording can be evaluated on an unseen one (the SDE code's GENIA "
               "`desc1`-`desc3` are the built-in `genia` task's templates).\n\n")
    out.append(sde_tasks())
    return "".join(out)


SPAN_EX = {"genia": Example("g1", {"text": "IL-2 gene expression requires NF-kappa B ."},
                            (("dna", "IL-2 gene"), ("protein", "NF-kappa B"))),
           "maven-ed": Example("m1", {"text": "The army invaded the city and the war began ."},
                               (("attack", "invaded"), ("process_start", "began")))}


def sde_tasks() -> str:
    """The SDE paper's span tasks as sdelab renders them: the presets and every output format, on the built-in
    `genia` and `maven-ed` tasks (the examples are the SDE code's own GENIA example and an invented sentence)."""
    from sdelab.tasks import get_task
    out = ["## The SDE tasks' presets and span formats\n\n",
           "Rendered on the built-in tasks, whose YAML carries the SDE code's types, instruction wordings, quoting "
           "and format instructions (`hints:`). Deliberate differences from the SDE code: the model's chat template "
           "wraps the prompt (the code used `[INST]`); one newline joins instruction and input (the code used two "
           "for Inst-first, and one space for MAVEN); an empty GENIA `default` answer is `[]`, as its prompt asks "
           "(the code's target was the empty string).\n\n"]
    for spec in ("es-sde", "heuristic", "weak"):  # the presets on multi-aspect sentiment (the MASA code's names)
        out.append(f"### multi-aspect: `{spec}`\n\n{show(ZH, get_design(spec), ZH_EX[0])}\n")
    for name, ex in SPAN_EX.items():
        task = get_task(name)
        for spec in ("es-sde", "heuristic", "weak", "es-sde+natural", "es-sde+json", "es-sde+json-object"):
            d = get_design(spec, "span_extraction", task.spec.presets())
            out.append(f"### `{name}`: `{spec}`\n\n{show(task, d, ex)}\n")
    return "".join(out)


if __name__ == "__main__":
    OUT.write_text(build())
    print(f"wrote {OUT}", file=sys.stderr)
