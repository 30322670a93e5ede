"""`sdelab report --publish DIR`: copy a study's report files to DIR, replacing only what sdelab published there.

DIR keeps a list of the files sdelab put there (`.sdelab-published.json`). A file sdelab would write that exists in
DIR but is not on that list (a README, someone's own plot, another tool's study.yaml) makes the publish refuse,
naming it; files on the list that this publish no longer writes (an old plot) are removed. Nothing else in DIR is
touched. Only the folder's own files are copied: a link among them (or a plots/ that is one) is not followed, and
of plots/ only SVG and PNG files (what sdelab draws; the report build removes its own plots it no longer draws).
"""
from __future__ import annotations

import json
from pathlib import Path

from sdelab import fileio
from sdelab.errors import SdelabError
from sdelab.report.plots import NAMES

MANIFEST = ".sdelab-published.json"
FILES = ("report.md", "report.html", "table.md", "study.yaml", "diagnostics.json")


def _published_before(dest: Path) -> set[str]:
    path = dest / MANIFEST
    if not path.exists():
        return set()
    try:
        listed = json.loads(path.read_text(encoding="utf-8"))["files"]
        if not isinstance(listed, list) or not all(isinstance(f, str) for f in listed):
            raise ValueError
    except (OSError, ValueError, KeyError, TypeError):
        raise SdelabError("not a list of published files sdelab can read; remove it to publish here anew "
                          "(sdelab then refuses to overwrite any file it finds)", path=path) from None
    return {f for f in listed if _ours(f)}


def _ours(name: str) -> bool:
    """A name sdelab may have published: one of FILES, or plots/<a file name>. Anything else on a list (edited by
    hand, or pointing elsewhere) is ignored, never overwritten or deleted."""
    parts = name.split("/")
    return name in FILES or (len(parts) == 2 and parts[0] == "plots" and parts[1] not in ("", ".", "..")
                             and not parts[1].startswith("."))


def _own(p: Path, folder: bool = False) -> bool:
    """A file (or folder) of the study folder itself, not a link to one elsewhere."""
    return not p.is_symlink() and (p.is_dir() if folder else p.is_file())


def publish(out: Path, dest: Path) -> list[str]:
    """Copy the report files of the study folder `out` into `dest`; the relative names written."""
    if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
        raise SdelabError("--publish needs a folder (not a link to one)", path=dest)
    plot_dir = out / "plots"
    plots = sorted(p for p in plot_dir.iterdir()
                   if _own(p) and p.name in NAMES) \
        if _own(plot_dir, folder=True) else []
    wanted = {name: out / name for name in FILES if _own(out / name)}
    wanted |= {f"plots/{p.name}": p for p in plots}
    before = _published_before(dest)
    foreign = sorted(n for n in wanted if (dest / n).exists() and n not in before)
    foreign += [n for n in wanted if (dest / n).is_symlink() or (dest / n).is_dir()]
    if (dest / "plots").is_symlink() or ((dest / "plots").exists() and not (dest / "plots").is_dir()):
        foreign.append("plots")
    if foreign:
        raise SdelabError(f"holds {', '.join(sorted(set(foreign)))}, which sdelab did not publish there (or a link "
                          "or folder in a file's place): it will not overwrite them; publish into another folder or "
                          "move them away", path=dest)
    dest.mkdir(parents=True, exist_ok=True)
    if plots:
        (dest / "plots").mkdir(exist_ok=True)
    # the list first, so that a publish that stops half-way leaves every file it wrote on it
    fileio.write_text(dest / MANIFEST, json.dumps({"files": sorted(before | set(wanted))}, indent=1) + "\n")
    for name, src in wanted.items():
        fileio.write_bytes(dest / name, src.read_bytes())
    for name in sorted(before - set(wanted)):  # what an earlier publish wrote and this one does not
        stale = dest / name
        if stale.is_file() and not stale.is_symlink():
            stale.unlink()
    fileio.write_text(dest / MANIFEST, json.dumps({"files": sorted(wanted)}, indent=1) + "\n")
    return sorted(wanted)
