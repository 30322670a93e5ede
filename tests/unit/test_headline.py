"""The report's first screen (report.headline) and its samples section (report.samples) on synthetic records: which
factor each row reads, the winner and the sentence, a reference that did not learn stated once above the table, names
escaped; a placeholder sample for research-only data, real predictions otherwise; the HTML page's layout (the answer
open first, every other section folded behind a table of contents)."""
from __future__ import annotations

import dataclasses

import pytest
from test_plots import cell, loaded

from sdelab import fileio
from sdelab.design.codec import render
from sdelab.design.options import get_design
from sdelab.report.headline import factor_rows, headline, option_name, sentence
from sdelab.report.html import split_sections, to_html
from sdelab.report.samples import CLOSE, OPEN, design_samples, marked, placeholder_example
from sdelab.results import PREDICTIONS, PredictionRow
from sdelab.tasks.registry import get_task

REF = {"name": "ref", "instruction": "last", "output_format": "natural", "input_loss": False}


def designed(design: str, options: dict, q: float, seeds=(0, 1), size=100, **kw):
    """Cells of `design` (options over REF) scoring accuracy q in-domain and q - 0.1 out-of-domain."""
    out = []
    for s in seeds:
        c = cell(design, size, s, {"val": q, "ood": q - 0.1}, {"ood": "out_of_domain"}, **kw)
        out.append(dataclasses.replace(c, config={"task": "demo-reviews", "modeling": "generative",
                                                  "design": {**REF, **options, "name": design}}))
    return out


def factors(ref_q=0.70):
    return loaded(designed("ref", {}, ref_q) + designed("lines", {"output_format": "lines"}, 0.85)
                  + designed("json", {"output_format": "json"}, 0.60)
                  + designed("first", {"instruction": "first"}, ref_q + 0.005)
                  + designed("mi", {"input_loss": True}, 0.70, errors=0.6)
                  + designed("two", {"instruction": "first", "output_format": "lines"}, 0.95))


def test_each_factor_reads_its_best_option_against_the_reference():
    rows = {(x.factor, x.set): x for x in factor_rows(factors(), "ref", 200)}
    # 'two' changes two options: it is no factor's row
    assert {f for f, _ in rows} == {"output_format", "instruction", "input_loss"}
    out = rows[("output_format", "val")]
    assert (out.option, out.ref_option, out.verdict, out.winner) == ("lines", "natural", "clear", "lines")
    assert out.c.diff == pytest.approx(0.15, abs=0.03) and out.c.lo > 0
    assert sentence(out).startswith("**lines** beats natural by +0.1")
    inst = rows[("instruction", "val")]
    assert inst.verdict == "unresolved" and sentence(inst).startswith("unresolved: first − last = +0.0")
    mi = rows[("input_loss", "val")]
    assert mi.verdict == "degenerate" and mi.winner == "-" and sentence(mi).startswith("not read: **degenerate**")
    assert option_name("input_loss", mi.option) == "input_loss=True"


def test_a_worse_option_is_named_as_the_loser():
    r = loaded(designed("ref", {}, 0.8) + designed("json", {"output_format": "json"}, 0.6))
    row = next(x for x in factor_rows(r, "ref", 200) if x.set == "val")
    assert row.winner == "natural" and sentence(row).startswith("**natural** beats json by +0.2")


def test_a_reference_that_did_not_learn_is_said_once_above_the_table():
    md = "\n".join(headline(factors(ref_q=0.30), "ref", 200))  # majority class 0.3: the reference is not above it
    table = md[md.index("| factor |"):]
    assert md.count("The reference ref (n=100) is not learned") == 1 and md.index("The reference ref") < md.index(
        "| factor |")
    assert "not read: the reference did not learn; lines learned" in table
    assert "not read: the reference did not learn; input_loss=True **degenerate**" in table
    assert "beats" not in table


def test_the_headline_escapes_names_and_says_when_no_factor_exists():
    r = loaded(designed("ref", {}, 0.7) + designed("x", {"output_format": "lines|<b>*"}, 0.8))
    md = "\n".join(headline(r, "ref", 200))
    assert "lines|<b>*" not in md and "lines\\|" in md
    alone = loaded(designed("ref", {}, 0.7))
    assert "no factor has a winner" in "\n".join(headline(alone, "ref", 200))


@pytest.mark.parametrize("task", ["demo-reviews", "sde-masa", "genia", "genft-summary"])
def test_a_placeholder_item_has_the_tasks_shape_and_renders(task):
    t = get_task(task)
    ex = placeholder_example(t)
    assert set(ex.fields) == set(t.spec.inputs) and all(v.startswith("⟨") for v in ex.fields.values())
    sample = marked(render(t, get_design("heuristic", t.spec.family, t.spec.presets()), ex, []))
    assert sample.count(OPEN) >= 1 and sample.count(OPEN) == sample.count(CLOSE)
    assert sample.rstrip().endswith(CLOSE)  # the response is what is trained (No-MI)


def test_samples_show_predictions_when_kept_and_a_placeholder_when_not(tmp_path):
    cells = designed("ref", {}, 0.7, seeds=(0,))
    kept = dataclasses.replace(cells[0], folder=tmp_path / "kept")
    kept.folder.mkdir()
    rows = [PredictionRow("val", f"i{i}", {"text": f"review {i} `x`"}, "positive", "positive" if i else None,
                          "positive", "negative", None if i else "unparsable") for i in range(5)]
    fileio.write_jsonl(kept.folder / PREDICTIONS, [x.to_json() for x in rows])
    md = "\n".join(design_samples(loaded([kept]), "ref", 10))
    assert "```sample\n" in md and "review 0 `x`" in md and f"{OPEN}negative{CLOSE}" in md  # rendered with gold
    assert md.count("| `i") == 3 and "unparsable" in md  # the first 3 predictions, with the error kind
    bare = dataclasses.replace(cells[0], folder=tmp_path / "bare")
    bare.folder.mkdir()
    md = "\n".join(design_samples(loaded([bare]), "ref", 10))
    assert "kept no predictions" in md and "⟨text⟩" in md and "| `i" not in md
    foreign = dataclasses.replace(bare, config={**bare.config, "task": "my-own-task.yaml"})
    assert "only the built-in tasks" in "\n".join(design_samples(loaded([foreign]), "ref", 10))


def test_the_page_opens_with_the_answer_and_folds_the_rest():
    md = ("# Report: s\n\nintro\n\n## The answer\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n## Details\n\n"
          "```sample\n## not a heading ⟦trained⟧ <b>\n```\n\n## More\n\ntext\n")
    lead, sections = split_sections(md)
    assert lead.startswith("# Report") and [t for t, _ in sections] == ["The answer", "Details", "More"]
    page = to_html(md, {})
    assert page.index("<section id='headline'>") < page.index("<nav>") < page.index("<details id='sec-1'>")
    assert "<a href='#sec-1'>Details</a>" in page and "<a href='#sec-2'>More</a>" in page
    assert "<mark>trained</mark> &lt;b&gt;" in page  # the trained text marked, the rest escaped


def test_research_only_data_shows_no_text_even_from_local_predictions(tmp_path):
    c = designed("ref", {}, 0.7, seeds=(0,))[0]
    c = dataclasses.replace(c, folder=tmp_path / "c", config={**c.config, "task": "lcqmc"})
    c.folder.mkdir()
    fileio.write_jsonl(c.folder / PREDICTIONS, [PredictionRow("val", "i0", {"text_a": "SECRET-A", "text_b": "b"},
                                                              "相同", "相同", "相同", "相同", None).to_json()])
    md = "\n".join(design_samples(loaded([c]), "ref", 10))
    assert "SECRET-A" not in md and "⟨text_a⟩" in md
