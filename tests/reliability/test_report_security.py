"""Issue 29: nothing from a study, task, data file, model output, hand-edited run folder or claims file makes a
report read a file; only the plots sdelab drew are embedded, and every string that reaches report.md, report.html,
table.md, findings.md or a plan is text.

A finished run folder is written directly through sdelab.results (no training) with every user-controlled string
carrying markdown, HTML, LaTeX and table-breaking payloads that point at a secret file outside the folder; then
`sdelab report --publish` and `sdelab claims` run, and the outputs are checked: the secret's content (also base64)
is nowhere, the secret was never opened, the HTML holds no tag or attribute but sdelab's own, every image is a plot
sdelab drew, and the payload shows up verbatim as text where the inventory says it reaches the report."""
from __future__ import annotations

import base64
import html.parser
import json
import os
import re
import shutil
import sys
from pathlib import Path

import pytest
import yaml
from markdown_it import MarkdownIt

from sdelab import fileio
from sdelab.cli import main
from sdelab.report.html import OPEN_TARGET
from sdelab.report.plan import PowerRow, Throughput, plan_markdown
from sdelab.report.plots import NAMES
from sdelab.report.text import code, text
from sdelab.results import METRICS, TRAIN_LOG, PredictionRow, write_cell, write_config

pytestmark = pytest.mark.filterwarnings("ignore:Tight layout not applied")  # labels a page long

MARKER = "sdelab-secret-5b1f0c9e"
N = 12
GOLD = ["pos", "neg", "neu"] * 4


def attack(secret: Path, tag: str) -> str:
    """One string with every trick: an image and a link to the secret (relative, absolute, file://), raw HTML, a
    script, a reference definition on a line of its own, LaTeX, table pipes, backticks, emphasis, an entity."""
    return (f"{tag} x\n![a](../../secret.txt) ![b]({secret}) <img src=../../secret.txt> [link](file:///etc/passwd) "
            f"<script>alert(1)</script> $\\frac{{$ | broken | table `tick` <{secret.as_uri()}>\n\n"
            f"[ref]: ../../secret.txt\n\n![ref] ![c](plots/../../../secret.txt) &lt;img&gt; _x_ *y* #h \\")


SHORT = "pwn-folder x\n![a](../../secret.txt) <img src=x> <script>alert(1)</script> $\\frac{ | broken | t `b`"
PAYLOADS = ["x\n![a](../../secret.txt)", "<img src=../../secret.txt>", "[link](file:///etc/passwd)",
            "<script>alert(1)</script>", "$\\frac{", "$\\frac{$ $x^$", "| broken | table",
            "![p](plots/../../secret.txt)",
            "`a` ``b`` <a href='../../secret.txt'>x</a>", "x\n\n[r]: ../../secret.txt\n\n![r]"]


# --- what is opened while sdelab runs (an audit hook: it sees every open(), whoever calls it) ---

_OPENED: list[str] | None = None


def _audit(event, args):
    if _OPENED is not None and event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        _OPENED.append(os.fsdecode(args[0]))


sys.addaudithook(_audit)  # inert unless a test records


def run_recorded(argv: list[str]) -> tuple[int, list[Path]]:
    global _OPENED
    _OPENED = []
    try:
        code_ = main(argv)
    finally:
        opened, _OPENED = _OPENED, None
    return code_, [Path(p).resolve() for p in opened]


# --- a finished run folder, written as sdelab writes one ---

def default_specs() -> list[dict]:
    specs = []
    for design, fmt, prec, base in (("es-sde", "natural", "fp32", 6), ("es-sde+json", "json", "bf16", 8)):
        for size in (8, 16):
            for seed in (0, 1):
                specs.append({"design": design, "size": size, "seed": seed, "untuned": None, "variant": "",
                              "config": {"task": "tiny-reviews", "model": "tiny", "modeling": "generative",
                                         "design": {"name": design, "output_format": fmt, "instruction": "first"},
                                         "train_size": size, "seed": seed, "train": {"lr": 2e-4}},
                              "precision": prec, "correct": base + seed + (size == 16), "truncated": 0,
                              "finished": "2024-05-01T10:00:00+00:00"})
    specs[2]["truncated"] = 1  # es-sde n16 s0: training samples and evaluation prompts cut
    untuned = {**specs[0], "untuned": 0, "size": "all", "seed": 0, "correct": 4,
               "config": {**specs[0]["config"], "modeling": "untuned", "train_size": "all"}}
    old = {**specs[0], "finished": "2024-04-01T10:00:00+00:00",  # superseded by specs[0], other settings
           "config": {**specs[0]["config"], "train": {"lr": 1e-3}}}
    for i, s in enumerate(specs + [untuned, old]):
        s.update(cell=f"c{i:02d}", sets={"test": "in_domain", "ood": "out_of_domain", "test~s0": "in_domain",
                                         "test~s1": "in_domain"},
                 primary="accuracy", template="t", pred={}, folder=None)
    return specs + [untuned, old]


def write_run(out: Path, specs: list[dict], study: dict, diag: dict) -> None:
    out.mkdir(parents=True)
    (out / "study.yaml").write_text(yaml.safe_dump(study, allow_unicode=True))
    fileio.write_json(out / "diagnostics.json", diag)
    for sp in specs:
        size = f"untuned-k{sp['untuned']}" if sp["untuned"] is not None else f"n{sp['size']}__s{sp['seed']}"
        name = sp["folder"] or f"{sp['variant']}{sp['design']}__{size}__{sp['cell']}"
        if len(name.encode()) > 250 and not sp["folder"]:  # a file name holds 255 bytes
            name = f"{size}__{sp['cell']}" if len(size) < 100 else sp["cell"]
        work = out / name.replace("/", "\u2215")
        work.mkdir()
        write_config(work, sp["config"])
        rows, metrics = [], {}
        for key, kind in sp["sets"].items():
            mine = []
            for i in range(N):
                gold = sp["pred"].get("gold", GOLD[i]) if i == 0 else GOLD[i]
                error = sp["pred"].get("error", "no_label") if i == N - 1 else None
                parsed = None if error else gold if i < sp["correct"] else ("neg" if gold != "neg" else "pos")
                mine.append(PredictionRow(key, f"{sp['pred'].get('id', 'item')}-{i}",
                                          {"text": sp["pred"].get("input", f"review {i}")},
                                          sp["pred"].get("raw", str(parsed)), parsed, parsed or "pos", gold, error))
            acc = sum(r.parsed == r.gold for r in mine) / N
            metrics[key] = {"n": N, "accuracy": acc, "macro_f1": acc, "lenient_accuracy": acc, "primary": sp["primary"],
                            "format_errors": 1, "format_error_rate": 1 / N,
                            "error_kinds": {sp["pred"].get("error", "no_label"): 1},
                            "majority_baseline": {"label": "pos", "accuracy": 1 / 3, "macro_f1": 0.17},
                            "kind": kind, "template": sp["template"], "template_seen": True,
                            "prompts_truncated": 2 * sp["truncated"]}
            rows += mine
        manifest = {"sdelab": "0", "precision": sp["precision"], "cpu": sp.get("cpu", "test cpu"), "threads": 2,
                    "model": {"name": sp.get("model_name", "tiny"), "path": "/nowhere", "fingerprint": "f"},
                    "train": {"examples": sp.get("examples", 16), "steps": 2, "tokens": 1000, "trained_tokens": 100,
                              "tokens_per_second": 50.0, "final_loss": 0.5,
                              "truncated_samples": sp.get("truncated_samples", sp["truncated"])},
                    "timings": {"tokenize_s": 0.1, "train_s": 2.0, "eval_s": 1.0}, "finished_at": sp["finished"]}
        head = {"cell": sp["cell"], "variant": sp["variant"], "design": sp["design"], "modeling": "generative",
                "train_size": sp["size"], "seed": sp["seed"], "untuned": sp["untuned"]}
        write_cell(work, head, {k: {**m, "primary": "accuracy"} for k, m in metrics.items()}, rows, manifest)
        if sp["primary"] != "accuracy":  # a hand-edited record: no writer of sdelab's would take it
            m = json.loads((work / METRICS).read_text())
            m["eval"]["test"]["primary"] = sp["primary"]
            (work / METRICS).write_text(json.dumps(m))
        if sp["untuned"] is None:
            fileio.write_jsonl(work / TRAIN_LOG, [{"step": 1, "epoch": 0.5, "loss": 1.0, "lr": 2e-4, "tokens": 500,
                                                   "seconds": 1.0}, {"step": 2, "epoch": 1.0, "loss": 0.5,
                                                                     "lr": 1e-4, "tokens": 1000, "seconds": 2.0}])


def default_study() -> dict:
    return {"name": "s", "task": "tiny-reviews", "model": "tiny", "designs": ["es-sde", "es-sde+json"],
            "reference": "es-sde", "train_sizes": [8, 16], "seeds": [0, 1]}


def default_diag() -> dict:
    return {"ks": [0], "examples": 8, "icl_examples": {"test": 12},
            "designs": {d: {"prompt_ppl": 3.0 + i, "output_ppl": 2.0 + i, "icl": {"0": {"test": 0.3 + i / 10}},
                            "icl_format_errors": {"0": {"test": 0.0}}} for i, d in enumerate(["es-sde",
                                                                                             "es-sde+json"])}}


def _each(specs, where, **changes):
    for sp in specs:
        if where(sp):
            sp.update(changes)


def inject(field: str, p: str, specs: list[dict], study: dict, diag: dict) -> None:
    """Put the payload `p` into one user-controlled field of the run folder."""
    json_design = lambda sp: sp["design"] == "es-sde+json"  # noqa: E731
    if field == "study.name":
        study["name"] = p
    elif field == "study.reference":
        study["reference"] = p
    elif field == "study.designs":
        del study["reference"]
        study["designs"] = [p, "es-sde"]
    elif field == "design":  # a design's name (a grid or a modifier chain the user wrote)
        for sp in filter(json_design, specs):
            sp["design"] = p
            sp["config"] = {**sp["config"], "design": {**sp["config"]["design"], "name": p}}
        study["designs"] = ["es-sde", p]
    elif field == "variant":  # a swept model path, task path or hyperparameter value
        _each(specs, lambda sp: True, variant=p)
    elif field == "train_size":
        _each(specs, lambda sp: sp["size"] == 16, size=p)
    elif field == "untuned":
        _each(specs, lambda sp: sp["untuned"] is not None, untuned=p)
    elif field in ("set", "kind"):  # an evaluation set's key (set / task:split / @template) or its kind
        for sp in specs:
            sets = dict(sp["sets"])
            sets[p if field == "set" else "ood"] = sets.pop("ood") if field == "set" else p
            sp["sets"] = sets
    elif field in ("option.value", "option.key", "modeling"):  # the ranked summary's factor, option, paradigm
        for sp in filter(json_design, specs):
            d = dict(sp["config"]["design"])
            if field == "option.value":
                d["output_format"] = p
            elif field == "option.key":
                d[p] = d.pop("output_format")
            else:
                d["output_format"] = "natural"
            sp["config"] = {**sp["config"], "design": d, **({"modeling": p} if field == "modeling" else {})}
    elif field == "config.key":  # a setting that differs from the superseded cell's
        specs[-1]["config"] = {**specs[-1]["config"], p: 1}
    elif field == "config.model":
        for sp in specs:
            sp["config"] = {**sp["config"], "model": p}
    elif field == "folder":
        specs[1]["folder"] = p
    elif field == "precision":
        _each(specs, json_design, precision=p)
    elif field in ("truncated_samples", "examples"):
        specs[2][field] = p
    elif field in ("cpu", "model_name"):
        _each(specs, lambda sp: True, **{field: p})
    elif field.startswith("pred."):  # a data file's ids, inputs and gold labels, the model's output, error kinds
        _each(specs, lambda sp: True, pred={field[5:]: p})
    elif field == "template":
        _each(specs, lambda sp: True, template=p)
    elif field == "primary":
        specs[0]["primary"] = p
    elif field == "seed":
        specs[0]["seed"] = p
    elif field == "finished_at":
        specs[-1]["finished"] = p
    elif field == "diag.design":
        diag["designs"][p] = dict(diag["designs"]["es-sde"])
    elif field == "diag.examples":
        diag["examples"] = p
    elif field == "diag.ks":
        diag["ks"] = [p]
        for d in diag["designs"].values():
            d["icl"] = {p: d["icl"]["0"]}
            d["icl_format_errors"] = {p: d["icl_format_errors"]["0"]}
    elif field == "diag.icl_examples":
        diag["icl_examples"] = {"test": p}
    else:
        raise AssertionError(field)


# the inventory: each field, and the files it reaches (() = read, but never shown: it must not leak either)
SHOWN = ("report.md", "report.html")
BOTH = SHOWN + ("table.md",)
FIELDS = {"study.name": SHOWN, "study.reference": SHOWN, "study.designs": (), "design": BOTH, "variant": BOTH,
          "train_size": BOTH, "untuned": BOTH, "set": BOTH, "kind": BOTH, "option.value": SHOWN,
          "option.key": SHOWN, "modeling": SHOWN, "config.key": SHOWN, "config.model": (), "folder": SHOWN,
          "precision": SHOWN, "truncated_samples": SHOWN, "examples": SHOWN, "cpu": (), "model_name": (),
          "pred.id": (), "pred.input": (), "pred.raw": (), "pred.gold": (), "pred.error": (), "template": (),
          "diag.design": SHOWN, "diag.examples": SHOWN, "diag.ks": SHOWN, "diag.icl_examples": SHOWN}
REFUSED = {"primary": "unknown primary metric", "seed": "whole number", "finished_at": "finished_at"}  # by read_cell


@pytest.fixture
def secret(tmp_path):
    s = tmp_path / "secret.txt"
    s.write_text(MARKER + "\n")
    return s


def build(tmp_path, fields: dict[str, str]) -> Path:
    specs, study, diag = default_specs(), default_study(), default_diag()
    for f, p in fields.items():
        inject(f, p, specs, study, diag)
    out = tmp_path / "runs" / "s"
    write_run(out, specs, study, diag)
    return out


# --- the checks ---

def leak_forms() -> list[bytes]:
    """The marker, and its base64 at each of the three alignments it can have inside a longer encoded file."""
    m = MARKER.encode()
    forms = [m]
    for pad in range(3):
        enc = base64.b64encode(b"\0" * pad + m)
        forms.append(enc[4 if pad else 0:-4])  # without the groups that mix in the bytes around it
    return forms


def assert_no_leak(*folders: Path) -> None:
    forms = leak_forms()
    for folder in folders:
        for f in folder.rglob("*"):
            if f.is_file():
                data = f.read_bytes()
                assert not any(x in data for x in forms), f"the secret leaked into {f}"


class Tags(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.data: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.data.append(data)


PAGE_TAGS = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p", "table", "thead", "tbody",
             "tr", "th", "td", "code", "strong", "em", "img", "br", "ul", "li",  # ul: findings.md's notes
             "section", "nav", "ol", "details", "summary", "pre", "mark"}  # the headline, contents, folds, samples
# the only attributes a page may carry, and what each may say (a regular expression over the whole value)
ATTRS = {("html", "lang"): r"en", ("meta", "charset"): r"utf-8", ("meta", "name"): r"viewport",
         ("meta", "content"): r"width=device-width, initial-scale=1", ("section", "id"): r"headline",
         ("details", "id"): r"sec-\d+", ("img", "src"): r".*", ("img", "alt"): r".*",
         ("code", "class"): r"language-sample"}  # a sample block as a markdown renderer shows it


def parse(page: str) -> Tags:
    t = Tags()
    t.feed(page)
    return t


def assert_inert(page: str, images: dict[str, bytes] | None, links: tuple[str, ...] = ()) -> str:
    """No tag or attribute in the HTML but those of a table-and-text page; images only sdelab's own plots
    (`images`: what each may be; None: no image at all), links only sdelab's own (`links`, or the contents' links to
    the page's own sections), and no script but sdelab's own (html.OPEN_TARGET, once, verbatim). Returns the page's
    text."""
    scripts = page.count("<script")
    assert scripts == 0 or (scripts == 1 and page.count(OPEN_TARGET) == 1), "a script that is not sdelab's"
    t = parse(page.replace(OPEN_TARGET, ""))
    sections = {attrs.get("id") for tag, attrs in t.tags if tag == "details"}
    for tag, attrs in t.tags:
        if tag == "a" and list(attrs) == ["href"] and (attrs["href"] in links or (
                re.fullmatch(r"#sec-\d+", attrs["href"]) and attrs["href"][1:] in sections)):
            continue
        assert tag in PAGE_TAGS, f"<{tag} {attrs}> in the page"
        for name, value in attrs.items():
            want = ATTRS.get((tag, name))
            assert want is not None and re.fullmatch(want, value or ""), f"<{tag} {attrs}> in the page"
        if tag == "img":
            assert images is not None, f"an image in the page: {attrs}"
            src = attrs["src"]
            if src.startswith("data:"):
                assert re.match(r"data:image/(png|svg\+xml);base64,", src), src[:40]
                assert base64.b64decode(src.split(",", 1)[1]) in images.values(), "an image sdelab did not draw"
            else:
                assert src in images, f"an image reference that is not a plot of sdelab's: {src}"
    return "".join(t.data)


def github(md: str) -> str:
    """Markdown as a permissive renderer shows it (raw HTML passed through, as GitHub does before sanitising)."""
    return MarkdownIt("commonmark", {"html": True}).enable("table").render(md)


def plots_of(out: Path) -> dict[str, bytes]:
    return {f"plots/{p.name}": p.read_bytes() for p in (out / "plots").iterdir()}


def check_outputs(out: Path, dest: Path, secret: Path, opened: list[Path], tmp_path: Path) -> dict[str, str]:
    """Every safety property of a built and published report; the text of each output file."""
    assert any(p.is_relative_to(out.resolve()) for p in opened), "the audit hook recorded nothing"
    assert secret.resolve() not in opened, "the secret was opened"
    for p in opened:  # nothing of tmp_path outside the run folder and the publish folder was read
        if p.is_relative_to(tmp_path.resolve()):
            assert p.is_relative_to(out.resolve()) or p.is_relative_to(dest.resolve()), f"read {p}"
    assert_no_leak(out, dest)
    plots = plots_of(out)
    assert plots and {Path(k).name for k in plots} <= set(NAMES)
    assert sorted(p.name for p in (dest / "plots").iterdir()) == sorted(Path(k).name for k in plots)
    for name, svg in plots.items():  # a figure is drawing only: no script, no link, no embedded markup or text
        assert not re.search(rb"<(script|foreignObject|a[ >]|text[ >])|\bon\w+=|href=.(?!#)|@import|url\((?!#)", svg), name
    page = (out / "report.html").read_text()
    texts = {"report.html": assert_inert(page, plots)}
    assert page.count("<img") == len(plots)  # every plot sdelab drew, once, and nothing else
    for name in ("report.md", "table.md"):
        md = (out / name).read_text()
        assert md == (dest / name).read_text()
        texts[name] = assert_inert(github(md), {k: b"" for k in plots} if name == "report.md" else None)
    return texts


def one_line(p: str) -> str:
    return " ".join(p.splitlines())


@pytest.mark.parametrize("field", FIELDS)
def test_every_user_string_reaches_the_report_as_text(tmp_path, secret, capsys, field):
    payload = attack(secret, f"pwn-{field}") if field != "folder" else SHORT  # a file name holds 255 bytes
    out, dest = build(tmp_path, {field: payload}), tmp_path / "pub"
    code_, opened = run_recorded(["report", str(out), "--publish", str(dest), "--bootstrap", "30"])
    err = capsys.readouterr().err
    assert code_ == 0, err
    texts = check_outputs(out, dest, secret, opened, tmp_path)
    want = one_line(payload).replace("/", "\u2215") if field == "folder" else one_line(payload)
    for name, shown in texts.items():
        if name in FIELDS[field]:  # shown, verbatim, as the characters the user wrote
            assert want in shown, f"{field} not shown as text in {name}"
        else:
            assert f"pwn-{field}" not in shown, f"{field} reaches {name}: add it to the inventory"


@pytest.mark.parametrize("payload", PAYLOADS)
def test_every_payload_in_every_field_at_once(tmp_path, secret, capsys, payload):
    fields = {f: f"{payload} ({f})" for f in FIELDS if f != "study.designs"}
    out, dest = build(tmp_path, fields), tmp_path / "pub"
    code_, opened = run_recorded(["report", str(out), "--publish", str(dest), "--bootstrap", "30"])
    assert code_ == 0, capsys.readouterr().err
    texts = check_outputs(out, dest, secret, opened, tmp_path)
    assert one_line(fields["design"]) in texts["report.md"] and one_line(fields["set"]) in texts["table.md"]


@pytest.mark.parametrize("field", REFUSED)
def test_fields_that_cannot_be_text_are_refused_by_name(tmp_path, secret, capsys, field):
    out, dest = build(tmp_path, {field: attack(secret, "pwn")}), tmp_path / "pub"
    code_, opened = run_recorded(["report", str(out), "--publish", str(dest)])
    err = capsys.readouterr().err
    assert code_ == 2 and REFUSED[field] in err and "Traceback" not in err, err
    assert MARKER not in err and secret.resolve() not in opened and not dest.exists()


def _link_config(out, outside):
    (outside / "config.yaml").write_text(f"secret_key: {MARKER}\n")
    cfg = next(out.glob("es-sde__n8__s1__*")) / "config.yaml"
    cfg.unlink()
    cfg.symlink_to(outside / "config.yaml")


def _link_study(out, outside):
    (outside / "study.yaml").write_text(f"name: {MARKER}\n")
    (out / "study.yaml").unlink()
    (out / "study.yaml").symlink_to(outside / "study.yaml")


def _link_diagnostics(out, outside):
    (outside / "d.json").write_text((out / "diagnostics.json").read_text().replace('"es-sde"', f'"{MARKER}"'))
    (out / "diagnostics.json").unlink()
    (out / "diagnostics.json").symlink_to(outside / "d.json")


def _link_cell(out, outside):
    cell = next(out.glob("es-sde__n8__s1__*"))
    cell.rename(outside / "cell")
    (outside / "cell" / "metrics.json").write_text(
        (outside / "cell" / "metrics.json").read_text().replace('"design": "es-sde"', f'"design": "{MARKER}"'))
    cell.symlink_to(outside / "cell")


def _link_plots(out, outside):
    (out / "plots").symlink_to(outside)


@pytest.mark.parametrize("plant", [_link_config, _link_study, _link_diagnostics, _link_cell, _link_plots])
def test_links_out_of_the_run_folder_are_refused(tmp_path, secret, capsys, plant):
    out, dest, outside = build(tmp_path, {}), tmp_path / "pub", tmp_path / "outside"
    outside.mkdir()
    plant(out, outside)
    before = sorted(p.name for p in outside.iterdir())
    code_, opened = run_recorded(["report", str(out), "--publish", str(dest)])
    err = capsys.readouterr().err
    assert code_ == 2 and ("leads out of the run folder" in err or "plots" in err) and "Traceback" not in err, err
    assert MARKER not in err and not dest.exists()
    assert sorted(p.name for p in outside.iterdir()) == before  # nothing written through the link either
    for p in opened:
        assert not p.is_relative_to(outside.resolve()) and p != secret.resolve(), f"read {p}"
    assert not (out / "report.md").exists()


def test_planted_plots_are_neither_written_through_nor_published(tmp_path, secret, capsys):
    out, dest = build(tmp_path, {}), tmp_path / "pub"
    victim = tmp_path / "victim.svg"
    victim.write_bytes(b"keep me")
    (out / "plots").mkdir()
    (out / "plots" / "scores.svg").symlink_to(victim)  # sdelab's plot name, linked to someone's file
    (out / "plots" / "leak.svg").symlink_to(secret)  # another name, linked to the secret
    (out / "plots" / "learning_curves.svg").write_bytes(MARKER.encode())  # a name sdelab will not draw here:
    for cell in out.glob("*__n16__*"):  # one train size, no learning curves
        shutil.rmtree(cell)
    (out / "plots" / "x.svg").write_text(f"<svg><script>{MARKER}</script></svg>")  # not a plot name of sdelab's
    code_, opened = run_recorded(["report", str(out), "--publish", str(dest), "--bootstrap", "30"])
    assert code_ == 0, capsys.readouterr().err
    assert victim.read_bytes() == b"keep me" and not (out / "plots" / "scores.svg").is_symlink()
    assert secret.resolve() not in opened and not (out / "plots" / "learning_curves.svg").exists()
    published = sorted(p.name for p in (dest / "plots").iterdir())
    assert "leak.svg" not in published and "x.svg" not in published and "scores.svg" in published
    assert_no_leak(dest)
    assert MARKER not in (out / "report.html").read_text()


CLAIM_FIELDS = ("id", "paper", "claim", "source", "note", "a", "size", "sets")


def claims_file(tmp_path: Path, field: str | None, p: str) -> Path:
    c = {"id": "c1", "paper": "SDE", "claim": "json beats natural", "source": "Table 1", "note": "a note",
         "runs": "runs/s", "a": {"design": "es-sde+json", "size": "8"}, "b": "es-sde", "sets": ["test"]}
    if field in ("id", "paper", "claim", "source", "note"):
        c[field] = p
    elif field == "a":
        c["a"] = {"design": p}
    elif field == "size":
        c["a"] = {"design": "es-sde+json", "size": p}
    elif field == "sets":
        c["sets"] = [p, "test"]
    corr = {"id": "c2", "paper": "SDE", "claim": "no correlation", "runs": "runs/s", "kind": "correlation"}
    path = tmp_path / "claims.yaml"
    path.write_text(yaml.safe_dump({"claims": [c, corr]}, allow_unicode=True))
    return path


@pytest.mark.parametrize("field", CLAIM_FIELDS + ("run:design", "run:set", "run:kind", "run:config.model"))
def test_findings_show_claims_and_run_folders_as_text(tmp_path, secret, capsys, field):
    payload = attack(secret, f"pwn-{field}")
    run_field = field.removeprefix("run:") if field.startswith("run:") else None
    out = build(tmp_path, {run_field: payload} if run_field else {})
    if run_field == "design":  # the claim names the arm as the run folder labels it
        path = claims_file(tmp_path, "a", payload)
    elif run_field in ("set", "kind"):
        path = claims_file(tmp_path, None, "")
        data = yaml.safe_load(path.read_text())
        data["claims"][0]["sets"] = [payload if run_field == "set" else "ood", "test"]
        path.write_text(yaml.safe_dump(data, allow_unicode=True))
    else:
        path = claims_file(tmp_path, None if run_field else field, payload)
    findings = tmp_path / "findings.md"
    code_, opened = run_recorded(["claims", str(path), "--out", str(findings), "--bootstrap", "30"])
    assert code_ == 0, capsys.readouterr().err
    assert secret.resolve() not in opened
    assert_no_leak(tmp_path / "runs")
    md = findings.read_text()
    assert not any(x in md.encode() for x in leak_forms())
    shown = assert_inert(github(md), None, links=("README.md#reading-findingsmd",))  # sdelab's one link
    assert one_line(payload) in shown, f"{field} not shown as text in findings.md"


@pytest.mark.parametrize("payload", PAYLOADS)
def test_a_plan_shows_names_as_text(payload):
    row = PowerRow(payload, payload, payload, payload, 10, 2, 0.1, 0.01, "prior", 0.05)
    md = plan_markdown(payload, payload, [row], [(payload, 1, 100, 10)], {payload: Throughput(10.0, 0.1, payload)})
    shown = assert_inert(github(md), None)
    assert shown.count(one_line(payload)) == 8  # name, cpu, design, reference, set, size, sub-study, measured by


@pytest.mark.parametrize("payload", PAYLOADS + ["", "plain", "test_id few_shot", "\\", "a\u2028b", "x\r\ny"])
def test_text_and_code_render_as_exactly_the_string(payload):
    from sdelab.report.html import to_html
    for f in (text, code):
        md = f"| a | b |\n|---|---|\n| {f(payload)} | end |\n"
        page = to_html(md, {})
        t = parse(page)
        assert assert_inert(page, None)
        cells = [tag for tag, _ in t.tags if tag == "td"]
        assert len(cells) == 2, f"{f.__name__}({payload!r}) broke the table row"
        assert one_line(payload) in "".join(t.data) and "end" in "".join(t.data)
        assert assert_inert(github(md), None)
