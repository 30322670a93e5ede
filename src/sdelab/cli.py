"""The `sdelab` command: run a study, look at its samples, list models, print results."""
from __future__ import annotations

import argparse
import math
import os
import shlex
import sys
from pathlib import Path

from sdelab import fileio
from sdelab.errors import SdelabError


def _run(args) -> int:
    from sdelab.config import load_study, output_dir
    from sdelab.report.table import print_table
    from sdelab.study import store
    from sdelab.study.context import prepare
    from sdelab.study.grid import expand_all
    from sdelab.study.runner import estimate_tokens, run_study

    check_emit(args)
    study, path = load_study(args.study)
    subs = expand_all(study, path.parent, args.data_root)
    cells = [c for s in subs for c in s.cells]
    mine = {c.id for c in only(shard(cells, args.shard) if args.shard else cells, args.only)}
    out = output_dir(study, args.output_dir)
    if args.emit:  # the Slurm files of the study's shards; nothing is prepared or trained here
        return emit_slurm(args, study.name, path, cells, out)
    if args.dry_run:
        total = 0
        ctxs, tokens = {}, {}  # prepared once, shared with the plan below
        for i, sub in enumerate(subs):
            todo = [c for c in sub.cells if c.id in mine]
            ctx = ctxs[i] = prepare(sub, path, args.data_root, str(out)) if todo and not args.no_cost else None
            for c in todo:
                state = "finished" if store.finished(out, c.folder_name) else "todo"
                cost = ""
                if ctx is not None:
                    tokens[c.id] = estimate_tokens(ctx, c)
                    total += tokens[c.id] if state == "todo" else 0
                    cost = f"  {tokens[c.id]:,} training tokens"
                print(f"{c.id}  {c.folder_name}  [{state}]{cost}")
        print(f"{len(mine)} cells" + (f", {total:,} training tokens to go" if not args.no_cost else ""))
        if not args.no_cost:
            print()
            print(plan_text(study, path, subs, mine, out, args.data_root, None, measure=False, ctxs=ctxs,
                            tokens=tokens))
        return 0
    # every sub-study is checked (data, designs, rationales, tokenizer) before anything is trained or written
    plan = [(prepare(sub, path, args.data_root, str(out), checkpoint_every=args.checkpoint_every), todo)
            for sub in subs if (todo := [c for c in sub.cells if c.id in mine])]
    main = fileio.is_main_process()  # under a data-parallel launch the others only train (study/runner.py)
    if main:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise SdelabError(f"cannot create the output folder: {e.strerror}", path=out) from None
        fileio.write_text(out / "study.yaml", path.read_text(encoding="utf-8"))
    for _, todo in plan:
        for c in todo if args.reuse and main else []:
            with store.claim(out, c.folder_name) as held:
                if held and not store.finished(out, c.folder_name) and (got := store.adopt(out, c.folder_name,
                                                                                             args.reuse)):
                    print(f"{got.name}: reused from {(got / 'reused_from.txt').read_text().strip()}")
    folders = []
    for ctx, todo in plan:
        if main:
            print(f"study '{study.name}': {len(todo)} cells, model {ctx.study.model} ({ctx.precision} on "
                  f"{ctx.device}), task {ctx.study.task}, output {ctx.out_dir}")
        folders += run_study(ctx, todo)
        ctx.cache.clear()  # free this model before the next sub-study loads its own
    if not main:
        return 0
    md = print_table(out, title=study.name, folders=folders)
    fileio.write_text(out / "table.md", md)
    return 0


def plan_text(study, path, subs, mine: set[str], out: Path, data_root: str | None, pilot: Path | None,
              measure: bool, ctxs: dict | None = None, tokens: dict | None = None) -> str:
    """The power and cost table of a study's unfinished cells (report.plan); `ctxs` (by sub-study index) and
    `tokens` (by cell id): what the caller has prepared and counted already."""
    from sdelab.report import plan
    from sdelab.study import store
    from sdelab.study.context import prepare
    from sdelab.study.runner import cpu_name, estimate_tokens

    cells, pilot_groups = plan.pilot_groups(pilot or out)
    cpu = cpu_name()
    rows, costs, through = [], [], {}
    ctxs, tokens = ctxs or {}, tokens or {}
    for i, sub in enumerate(subs):
        todo = [c for c in sub.cells if c.id in mine and not store.finished(out, c.folder_name)]
        ctx = ctxs.get(i) or prepare(sub, path, data_root, str(out))
        rows += plan.power_rows(plan.comparisons_of(sub, sub.study.reference, ctx.targets), len(sub.study.seeds),
                                pilot_groups)
        label = " ".join(x for x in (sub.cells[0].variant if sub.cells else "", sub.study.task, sub.study.model) if x)
        items = sum(len(t.examples) for t in ctx.targets)
        costs.append((label, len(todo), sum(tokens[c.id] if c.id in tokens else estimate_tokens(ctx, c)
                                            for c in todo), items * len(todo)))
        got = plan.pilot_throughput(cells, ctx.model.name, cpu)
        if (got is None or got.train_tokens_per_s is None or got.eval_s_per_item is None) and measure and todo:
            got = plan.merged(got, plan.probe_throughput(ctx, todo))
        through[label] = got or plan.Throughput(None, None, "not measured (sdelab plan measures it)")
        ctx.cache.clear()
    return plan.plan_markdown(study.name, cpu, rows, costs, through, len(os.sched_getaffinity(0)))


def _plan(args) -> int:
    from sdelab.config import load_study, output_dir
    from sdelab.study.grid import expand_all

    study, path = load_study(args.study)
    subs = expand_all(study, path.parent, args.data_root)
    out = output_dir(study, args.output_dir)
    text = plan_text(study, path, subs, {c.id for s in subs for c in s.cells}, out, args.data_root, args.pilot,
                     measure=not args.no_measure)
    print(text)
    if args.out:
        fileio.write_text(Path(args.out), text)
    return 0


def _render(args) -> int:
    from rich.console import Console
    from rich.text import Text

    from sdelab.config import load_study
    from sdelab.design.options import get_design
    from sdelab.models.tokenize import IGNORE, encode_train
    from sdelab.study.context import build_samples, prepare
    from sdelab.study.grid import expand_all
    from sdelab.study.rationales import attach_rationales
    from sdelab.tasks.task import subset

    study, path = load_study(args.study)
    sub = expand_all(study, path.parent, args.data_root)[0]  # the first task / model of a sweep
    study = sub.study
    ctx = prepare(sub, path, args.data_root, None)
    designs = ctx.designs
    if args.design:
        designs = [d for d in designs if d.name == args.design] or [
            get_design(args.design, ctx.task.spec.family, ctx.task.spec.presets())]
    console = Console(highlight=False)
    tok = ctx.tokenizer
    size = None if study.train_sizes[0] == "all" else int(study.train_sizes[0])
    pool = subset(ctx.train_pool, size, study.seeds[0])
    for d in designs:
        console.rule(f"design {d.name}")
        shown = attach_rationales(ctx.task, pool[: args.n], study.rationales, d.reasoning != "none",
                                  device=ctx.device)
        for sample in build_samples(ctx, ctx.task, d, shown, pool, study.seeds[0]):
            enc = encode_train(ctx.formatter, sample)
            text = Text()
            for trained, ids in _runs(enc.input_ids, [lab != IGNORE for lab in enc.labels]):
                text.append(tok.decode(ids), style="bold green" if trained else "dim")
            console.print(text)
            n_tr = sum(1 for x in enc.labels if x != IGNORE)
            console.print(f"[cyan]{len(enc.input_ids)} tokens, {n_tr} trained (green), "
                          f"{enc.truncated} input tokens truncated (max_length {study.train.max_length})[/cyan]\n")
    return 0


def _runs(ids: list[int], flags: list[bool]) -> list[tuple[bool, list[int]]]:
    """Consecutive tokens with the same trained flag, decoded together (multi-byte characters stay whole)."""
    out: list[tuple[bool, list[int]]] = []
    for tid, flag in zip(ids, flags):
        if out and out[-1][0] == flag:
            out[-1][1].append(tid)
        else:
            out.append((flag, [tid]))
    return out


def _diagnose(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from sdelab.config import load_study
    from sdelab.study.context import prepare
    from sdelab.study.diagnose import diagnose
    from sdelab.study.grid import expand_all

    study, path = load_study(args.study)
    ctx = prepare(expand_all(study, path.parent, args.data_root)[0], path, args.data_root, args.output_dir)
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    ks = args.k if args.k is not None else (study.untuned or [0])
    res = diagnose(ctx, ks, args.n, args.size)
    table = Table(title=f"{study.name}: design diagnostics on the base model ({res['examples']} examples for the "
                        f"perplexities, {max(res['icl_examples'].values(), default=0)} a set in context)")
    sets = [t.key for t in ctx.targets]
    for h in ["design", "prompt PPL", "output PPL", *[f"k={k} {s}" for k in ks for s in sets]]:
        table.add_column(h)
    for name, r in res["designs"].items():
        table.add_row(name, f"{r['prompt_ppl']:.2f}", f"{r['output_ppl']:.2f}",
                      *[f"{r['icl'][str(k)][s]:.3f}" + (f" ({100 * e[str(k)][s]:.0f}% err)"
                                                          if (e := r.get("icl_format_errors")) else "")
                        for k in ks for s in sets])
    Console().print(table)
    print(f"wrote {ctx.out_dir / 'diagnostics.json'}")
    return 0


def _models(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from sdelab.models.catalog import catalog_rows

    table = Table(title="sdelab model catalog (also: any local folder, .gguf file or hub id)")
    for h in ("name", "languages", "description", "status"):
        table.add_column(h)
    for r in catalog_rows():
        table.add_row(r["name"], r["languages"], r["description"], r["status"])
    Console().print(table)
    return 0


def _tasks(args) -> int:
    from sdelab.tasks.registry import builtin_tasks, load_task_file
    for name, p in builtin_tasks().items():
        t = load_task_file(p)
        print(f"{name:24s} {t.spec.family:22s} {t.spec.language}  splits: {', '.join(t.spec.splits)}")
    return 0


def _report(args) -> int:
    from sdelab import results
    from sdelab.report.build import build_report
    from sdelab.report.table import print_table
    out = Path(args.study_dir)
    if out.suffix in (".yaml", ".yml") and out.is_file():  # a study file: its output folder
        from sdelab.config import load_study, output_dir
        out = output_dir(load_study(out)[0])
    if not results.finished_folders(out):
        raise SdelabError("no finished run folders here", path=out)
    check_choices(out, args.metric, args.reference)
    md = print_table(out, metric=args.metric)
    fileio.write_text(out / "table.md", md)
    md_path, html_path = build_report(out, args.reference, args.bootstrap)
    print(f"wrote {md_path} and {html_path}")
    if args.publish:
        from sdelab.report.publish import publish
        dest = Path(args.publish)
        publish(out, dest)
        print(f"published to {dest}")
    return 0


def _claims(args) -> int:
    from sdelab.report.claims import findings_markdown
    md = findings_markdown(args.claims, args.bootstrap)
    if args.out:
        fileio.write_text(Path(args.out), md)
        print(f"wrote {args.out}")
    else:
        print(md, end="")
    return 0


def check_emit(args) -> None:
    """`run --emit` writes files for the shards to run later: flags of a run here make no sense with it, and the
    Slurm flags none without it."""
    if args.emit:
        clash = [f for f, given in (("--shard", args.shard), ("--only", args.only), ("--dry-run", args.dry_run))
                 if given]
        if clash:
            raise SdelabError(f"--emit {args.emit} writes one shard per array task of the whole study; "
                              f"{' and '.join(clash)} cannot go with it")
    elif given := [f for f, v in (("--shards", args.shards), ("--sbatch", args.sbatch),
                                  ("--launcher", args.launcher)) if v]:
        raise SdelabError(f"{', '.join(given)}: only with --emit slurm (they describe the Slurm jobs it writes)")


def emit_slurm(args, name: str, path: Path, cells: list, out: Path) -> int:
    """Write `<out>/slurm/` (study/slurm.py) and say how to submit it and what each shard holds."""
    from sdelab.study import slurm, store

    todo = {c.id for c in cells if not store.finished(out, c.folder_name)}
    n = args.shards or max(1, len(todo))
    if n > len(cells):
        raise SdelabError(f"--shards {n}: the study has {len(cells)} cells, so at most {len(cells)} shards")
    run_args = [*(["--data-root", str(Path(args.data_root).absolute())] if args.data_root else []),
                *[x for r in args.reuse for x in ("--reuse", str(r.absolute()))],
                *(["--checkpoint-every", str(args.checkpoint_every)] if args.checkpoint_every != 600.0 else [])]
    job = slurm.ArrayJob(name, path.absolute(), out, n, Path.cwd(), args.launcher or slurm.default_launcher(),
                         tuple(args.sbatch), tuple(run_args))
    d = slurm.write(job)
    held = [sum(c.id in todo for c in shard(cells, f"{i}/{n}")) for i in range(n)]
    each = f"{held[0]} each" if len(set(held)) == 1 else f"{min(held)} to {max(held)} each: " + ", ".join(
        map(str, held))
    print(f"wrote {', '.join(slurm.FILES)} to {d}")
    print(f"{n} shards of study '{name}', cells to run: {len(todo)} of {len(cells)} ({each})")
    print(f"submit with: bash {shlex.quote(str(d / 'submit.sh'))}")
    return 0


def shard(cells: list, spec: str) -> list:
    """Cells i, i+n, i+2n, ... of the deterministic cell list for `--shard i/n` (i from 0)."""
    i, n = shard_spec(spec)
    return cells[i::n]


def shard_spec(spec: str) -> tuple[int, int]:
    """(i, n) of `--shard i/n`, 0 <= i < n."""
    i, _, n = spec.partition("/")
    if not (i.strip().isdigit() and n.strip().isdigit() and int(i) < int(n)):
        raise SdelabError(f"--shard takes i/n with 0 <= i < n (slice i of n, from 0), got '{spec}'")
    return int(i), int(n)


def only(cells: list, patterns: list[str]) -> list:
    """The cells whose folder name matches one of the `--only` globs (all cells when none is given)."""
    if not patterns:
        return cells
    from fnmatch import fnmatchcase
    kept = [c for c in cells if any(fnmatchcase(c.folder_name, p) for p in patterns)]
    if not kept:
        names = ", ".join(c.folder_name for c in cells[:6]) + (", ..." if len(cells) > 6 else "")
        raise SdelabError(f"--only {' '.join(patterns)}: no cell's folder name matches (the cells: {names})")
    return kept


def _positive_int(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got '{text}'")
    return int(text)


def _count(text: str) -> int:
    if not text.strip().isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number, 0 or more, got '{text}'")
    return int(text)


def _seconds(text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        x = math.nan
    if not 0 <= x < math.inf:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, 0 or more, got '{text}'")
    return x


def _shard(text: str) -> str:
    try:
        shard_spec(text)
    except SdelabError as e:
        raise argparse.ArgumentTypeError(e.message.removeprefix("--shard ")) from None
    return text


def _sbatch(text: str) -> str:
    from sdelab.study.slurm import check_option
    try:
        return check_option(text)
    except SdelabError as e:
        raise argparse.ArgumentTypeError(e.message.removeprefix(f"--sbatch {text!r}: ").removeprefix(
            f"--sbatch '{text}': ")) from None


def _launcher(text: str) -> str:
    from sdelab.study.slurm import check_launcher
    try:
        return check_launcher(text)
    except SdelabError as e:
        raise argparse.ArgumentTypeError(e.message.removeprefix("--launcher ")) from None


def _folder(text: str) -> Path:
    if not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"'{text}' is not a folder" if Path(text).exists() else
                                         f"no folder '{text}'")
    return Path(text)


def check_choices(out: Path, metric: str | None, reference: str | None) -> None:
    """`report --metric` and `--reference` name a metric and a design of the run folders (or fail naming them)."""
    from sdelab.errors import did_you_mean
    from sdelab.report.records import read_records
    if metric is None and reference is None:
        return
    cells = read_records(out)  # as the report reads them (refusing links out of the folder)
    sets = [(k, {n for n, v in m.values.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
            for c in cells for k, m in c.eval.items()]
    if metric is not None and (lacking := sorted({k for k, names in sets if metric not in names})):
        known = sorted(set().union(*(names for _, names in sets)))
        raise SdelabError(f"--metric '{metric}': " + (f"the sets {', '.join(lacking)} have no such metric"
                                                       if metric in known else "not a metric of these run folders"
                                                       + did_you_mean(metric, known)), path=out)
    designs = sorted({c.design for c in cells} | {c.label for c in cells})
    if reference is not None and reference not in designs:
        raise SdelabError(f"--reference '{reference}': no such design in these run folders"
                          + did_you_mean(reference, designs), path=out)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sdelab", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="train and evaluate every unfinished cell of a study")
    r.add_argument("study")
    r.add_argument("--data-root", help="folder of the shared data sets (default ../shared/data)")
    r.add_argument("--output-dir", help="where run folders go (default runs/<study name>)")
    r.add_argument("--dry-run", action="store_true", help="list the cells and stop")
    r.add_argument("--no-cost", action="store_true", help="with --dry-run: skip the training-token estimate (which "
                                                            "loads the tokenizer and the data)")
    r.add_argument("--shard", type=_shard, help="run only slice i of n ('i/n', i from 0); results merge by cell "
                                                "id")
    r.add_argument("--only", action="append", default=[], metavar="GLOB",
                   help="run only the cells whose folder name matches this glob, e.g. 'es-sde__*' (repeatable)")
    r.add_argument("--reuse", action="append", default=[], type=_folder, metavar="RUN_DIR",
                   help="copy finished cells with the same id (same full config) from another study's run folder "
                        "instead of retraining them (repeatable)")
    r.add_argument("--checkpoint-every", type=_seconds, default=600.0, metavar="SECONDS",
                   help="save the training state of the cell in progress this often (default 600; 0: after every "
                        "optimizer step); a stopped run resumes from it")
    r.add_argument("--emit", choices=["slurm"], help="write the study's shards as a Slurm job array and its report "
                                                     "as a job after them (into <output dir>/slurm/), and stop")
    r.add_argument("--shards", type=_positive_int, help="with --emit: how many array tasks (default: the number of "
                                                        "cells not finished yet)")
    r.add_argument("--sbatch", action="append", default=[], type=_sbatch, metavar="OPT",
                   help="with --emit: an '#SBATCH OPT' line, e.g. --sbatch --partition=gpu --sbatch --gres=gpu:1 "
                        "(repeatable)")
    r.add_argument("--launcher", type=_launcher, metavar="CMD",
                   help="with --emit: the command that runs sdelab in each task, as given (default: this Python "
                        "-m sdelab), e.g. 'accelerate launch --multi_gpu --num_processes 4 -m sdelab'")
    r.set_defaults(fn=_run)
    pl = sub.add_parser("plan", help="before running: the smallest effect each comparison can resolve (80%% power) "
                                     "and the study's cost in CPU-hours on this machine")
    pl.add_argument("study")
    pl.add_argument("--data-root")
    pl.add_argument("--output-dir", help="the study's run folder (default runs/<study name>): its finished cells are "
                                         "the pilot unless --pilot is given")
    pl.add_argument("--pilot", type=_folder, help="a run folder of the same task whose cells give the per-item and "
                                                  "seed variances and the measured speed")
    pl.add_argument("--no-measure", action="store_true", help="do not probe the speed here when the pilot has no "
                                                              "cell run on this CPU")
    pl.add_argument("--out", help="also write the plan (markdown) here")
    pl.set_defaults(fn=_plan)
    rd = sub.add_parser("render", help="print samples exactly as the model sees them (trained tokens in green)")
    rd.add_argument("study")
    rd.add_argument("--design")
    rd.add_argument("-n", type=_positive_int, default=3, help="samples per design")
    rd.add_argument("--data-root")
    rd.set_defaults(fn=_render)
    dg = sub.add_parser("diagnose", help="prompt/output perplexity and in-context scores of each design on the base "
                                         "model, before training")
    dg.add_argument("study")
    dg.add_argument("-n", type=_positive_int, default=200, help="training examples for the perplexities")
    dg.add_argument("-k", type=_count, nargs="*", help="demonstrations for in-context scores (default: the study's "
                                                    "untuned list, or 0)")
    dg.add_argument("--size", type=_positive_int, help="score the in-context designs on the first SIZE items of each "
                                             "evaluation set (default: all the study evaluates)")
    dg.add_argument("--data-root")
    dg.add_argument("--output-dir")
    dg.set_defaults(fn=_diagnose)
    m = sub.add_parser("models", help="the model catalog")
    m.add_argument("action", choices=["list"])
    m.set_defaults(fn=_models)
    t = sub.add_parser("tasks", help="the built-in tasks")
    t.add_argument("action", choices=["list"])
    t.set_defaults(fn=_tasks)
    rp = sub.add_parser("report", help="tables, statistics and plots of a study's run folders: report.md/.html")
    rp.add_argument("study_dir", help="a study's run folder, or the study YAML (its output folder)")
    rp.add_argument("--publish", metavar="DIR", help="also copy the report, table, study.yaml and plots to DIR "
                                                     "(e.g. docs/results/<study>)")
    rp.add_argument("--metric", help="default: each evaluation set's primary metric")
    rp.add_argument("--reference", help="design to compare the others with (default: the study's reference)")
    rp.add_argument("--bootstrap", type=_positive_int, default=1000, help="bootstrap resamples")
    rp.set_defaults(fn=_report)
    cl = sub.add_parser("claims", help="check a paper's claims (a claims YAML) against run folders: effect, CI, "
                                       "verdict per claim")
    cl.add_argument("claims")
    cl.add_argument("--out", help="write the markdown table here (default: print it)")
    cl.add_argument("--bootstrap", type=_positive_int, default=1000, help="bootstrap resamples")
    cl.set_defaults(fn=_claims)
    return p


def sbatch_values(argv: list[str]) -> list[str]:
    """'--sbatch --partition=gpu' as '--sbatch=--partition=gpu': argparse would take a value that starts with '-'
    for a flag of its own, and every sbatch option starts with one."""
    out, rest = [], iter(argv)
    for a in rest:
        out.append(f"--sbatch={next(rest, '')}" if a == "--sbatch" else a)
    return out


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = build_parser().parse_args(sbatch_values(sys.argv[1:] if argv is None else argv))
    try:
        return args.fn(args)
    except SdelabError as e:
        print(f"sdelab: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sdelab: interrupted; finished cells are kept, run the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
