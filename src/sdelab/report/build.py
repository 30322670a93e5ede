"""`sdelab report STUDY_DIR`: report.md and report.html from run folders alone: the sections (report.sections)
and plots (report.plots) rendered over the loaded records, in order. Deterministic: the same run folders give the
same files. Only report.md, report.html and plots/ are written, beside the cell folders, which are only read."""
from __future__ import annotations

from pathlib import Path

from sdelab import fileio
from sdelab.errors import SdelabError
from sdelab.report import sections
from sdelab.report.html import to_html
from sdelab.report.plots import NAMES, plots
from sdelab.report.records import load
from sdelab.report.text import code, text
from sdelab.results import ITEM_STATS

SECTIONS = (sections.superseded_note, sections.precision_note, sections.truncation_note, sections.main_table,
            sections.matrix, sections.significance, sections.summary, sections.decoding_samples, sections.errors_table,
            sections.secondary_table, sections.cost_table, sections.diagnostics)


def build_report(out_dir: Path, reference: str | None = None, n_boot: int = 1000) -> tuple[Path, Path]:
    r = load(out_dir)
    designs = list(dict.fromkeys(c.label for c in r.cells))
    reference = str(reference or r.study.get("reference") or _first_listed(r.study, designs))
    md = [f"# Report: {text(r.study.get('name', out_dir.name))}\n",
          f"Run folders: {len(r.cells)} cells. Reference design: {code(reference)}. Metric per evaluation set: its "
          "task's primary metric (strict: a format error counts as wrong). Cells are mean ± sd over seeds; CI is the "
          f"95% percentile bootstrap over the items of all seeds pooled ({n_boot} resamples); p compares a design with "
          "the reference on the same items and seeds (paired bootstrap; McNemar for accuracy).\n"]
    bare = [c.folder.name for c in r.cells if not c.items]
    if bare:
        md.append(f"{len(bare)} cell(s) kept neither predictions nor per-item statistics ({ITEM_STATS}): "
                  "their means count, but they get no interval and no paired test: " + ", ".join(map(text, bare))
                  + ".\n")
    for section in SECTIONS:
        md += section(r, reference, n_boot)
    plots_dir = out_dir / "plots"
    if plots_dir.is_symlink() or (plots_dir.exists() and not plots_dir.is_dir()):
        raise SdelabError("is a link or a file: sdelab writes its plots into a folder of its own here; move it away",
                          path=plots_dir)
    plots_dir.mkdir(exist_ok=True)
    made = plots(r, plots_dir)
    for stale in sorted(set(NAMES) - {p.name for _, p, _ in made}):  # drawn by an earlier report, not this one
        (plots_dir / stale).unlink(missing_ok=True)
    md.append("## Plots\n")
    for title, p, _ in made:
        md.append(f"### {title}\n\n![{title}](plots/{p.name})\n")
    page = "\n".join(md)
    md_path, html_path = out_dir / "report.md", out_dir / "report.html"
    fileio.write_text(md_path, page)
    # the page embeds the PNG bytes plots() drew in this call, never a file named in the markdown
    fileio.write_text(html_path, to_html(page, {f"plots/{p.name}": png for _, p, png in made}))
    return md_path, html_path


def _first_listed(study: dict, designs: list[str]) -> str:
    for d in study.get("designs", []):
        if isinstance(d, str) and d in designs:
            return d
    return designs[0]
