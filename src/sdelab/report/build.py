"""`sdelab report STUDY_DIR`: report.md and report.html from run folders alone: the sections (report.sections)
and plots (report.plots) rendered over the loaded records, in order. Deterministic: the same run folders give the
same files. Only report.md, report.html and plots/ are written, beside the cell folders, which are only read."""
from __future__ import annotations

from pathlib import Path

from sdelab import fileio
from sdelab.errors import SdelabError
from sdelab.report import sections
from sdelab.report.headline import headline
from sdelab.report.html import to_html
from sdelab.report.plots import NAMES, plots
from sdelab.report.records import load
from sdelab.report.samples import design_samples
from sdelab.report.text import code, text
from sdelab.results import ITEM_STATS

NOTES = (sections.superseded_note, sections.precision_note, sections.truncation_note)  # before the evidence
SECTIONS = (sections.main_table, sections.matrix, sections.significance, sections.summary, design_samples,
            sections.decoding_samples, sections.errors_table, sections.secondary_table, sections.cost_table,
            sections.diagnostics)
OLD_PNG = ("scores.png", "id_vs_ood.png", "learning_curves.png", "format_errors.png", "training_loss.png")
HEADLINE_PLOT = "forest.svg"  # shown under the headline table; the other plots in their own section


def build_report(out_dir: Path, reference: str | None = None, n_boot: int = 1000) -> tuple[Path, Path]:
    r = load(out_dir)
    designs = list(dict.fromkeys(c.label for c in r.cells))
    reference = str(reference or r.study.get("reference") or _first_listed(r.study, designs))
    md = [f"# Report: {text(r.study.get('name', out_dir.name))}\n",
          f"{len(r.cells)} cells; reference design {code(reference)}; each evaluation set's primary metric (strict: "
          "a format error counts as wrong).\n"]
    md += headline(r, reference, n_boot)
    head_at = len(md)  # the forest plot goes here once drawn
    notes = [line for note in NOTES for line in note(r, reference, n_boot)]
    bare = [c.folder.name for c in r.cells if not c.items]
    if bare:
        notes.append(f"{len(bare)} cell(s) kept neither predictions nor per-item statistics ({ITEM_STATS}): "
                     "their means count, but they get no interval and no paired test: " + ", ".join(map(text, bare))
                     + ".\n")
    md += ["## How to read this report\n",
           "Cells are mean ± sd over seeds; CI is the 95% percentile bootstrap over the items of all seeds pooled "
           f"({n_boot} resamples); p compares a design with the reference on the same items and seeds (paired "
           "bootstrap; McNemar for accuracy). A difference is read only when both arms pass the validity gates "
           "(an arm must beat its floor in-domain and not be degenerate; docs/results/README.md).\n",
           *[line.replace("## ", "### ", 1) if line.startswith("## ") else line for line in notes]]
    for section in SECTIONS:
        md += section(r, reference, n_boot)
    plots_dir = out_dir / "plots"
    if plots_dir.is_symlink() or (plots_dir.exists() and not plots_dir.is_dir()):
        raise SdelabError("is a link or a file: sdelab writes its plots into a folder of its own here; move it away",
                          path=plots_dir)
    plots_dir.mkdir(exist_ok=True)
    made = plots(r, plots_dir, reference, n_boot)
    for stale in sorted(set(NAMES) - {p.name for _, p, _ in made}):  # drawn by an earlier report, not this one
        (plots_dir / stale).unlink(missing_ok=True)
    for old in OLD_PNG:  # the PNG figures of reports before the SVG ones
        (plots_dir / old).unlink(missing_ok=True)
    md.insert(head_at, "".join(f"![{title}](plots/{p.name})\n" for title, p, _ in made if p.name == HEADLINE_PLOT))
    md.append("## Plots\n")
    for title, p, _ in made:
        if p.name != HEADLINE_PLOT:
            md.append(f"### {title}\n\n![{title}](plots/{p.name})\n")
    page = "\n".join(md)
    md_path, html_path = out_dir / "report.md", out_dir / "report.html"
    fileio.write_text(md_path, page)
    # the page embeds the PNG bytes plots() drew in this call, never a file named in the markdown
    fileio.write_text(html_path, to_html(page, {f"plots/{p.name}": data for _, p, data in made}))
    return md_path, html_path


def _first_listed(study: dict, designs: list[str]) -> str:
    for d in study.get("designs", []):
        if isinstance(d, str) and d in designs:
            return d
    return designs[0]
