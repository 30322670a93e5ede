"""Run folders: a cell is built in '<name>.partial/' and renamed when complete, so a folder without that suffix
is always a finished cell; an interrupted one resumes from what its '.partial' folder kept (the training
checkpoint, each evaluation set already scored). Processes sharing a folder (shards, or the same study started
twice) claim a cell before touching it: an exclusive lock the kernel drops when the process ends, however it
ends, so a killed run never leaves a cell stuck."""
from __future__ import annotations

import contextlib
import fcntl
import glob
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from sdelab.errors import SdelabError
from sdelab.fileio import only_main, write_text
from sdelab.results import METRICS, PARTIAL


def finished(out_dir: Path, folder_name: str) -> Path | None:
    """The finished folder of a cell, found by its id (the folder name's last part), so a cell is never redone
    even if its folder was named differently (e.g. by a study that now sweeps one more axis)."""
    if (out_dir / folder_name / METRICS).exists():
        return out_dir / folder_name
    cell_id = folder_name.rsplit("__", 1)[-1]
    for p in sorted(out_dir.glob(f"*__{cell_id}")) if out_dir.exists() else []:
        if (p / METRICS).exists():
            return p
    return None


CLAIMS = ".claims"  # <out>/.claims/<cell id>.lock: one lock file per cell, left in place (empty)


@contextlib.contextmanager
def claim(out_dir: Path, folder_name: str) -> Iterator[bool]:
    """Hold the cell for this process: yields True, or False at once when another process holds it."""
    cell_id = folder_name.rsplit("__", 1)[-1]
    only_main(out_dir)
    try:
        (out_dir / CLAIMS).mkdir(parents=True, exist_ok=True)
        f = open(out_dir / CLAIMS / f"{cell_id}.lock", "a")
    except OSError as e:
        raise SdelabError(f"cannot write the run folder: {e.strerror}", path=out_dir) from None
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def predecessor(out_dir: Path, folder_name: str) -> Path | None:
    """The most recent finished folder of the same design, size and seed under another id (the study, a data file
    or the weights changed since), so the log can say why the cell runs again."""
    stem = folder_name.rsplit("__", 1)[0]
    found = [p for p in out_dir.glob(f"{glob.escape(stem)}__*") if p.name != folder_name
             and p.name.rsplit("__", 1)[0] == stem and (p / METRICS).exists()] if out_dir.exists() else []
    return max(found, key=lambda p: (p / METRICS).stat().st_mtime) if found else None


def adopt(out_dir: Path, folder_name: str, sources: list[Path]) -> Path | None:
    """Copy a finished cell with the same id from another study's run folder (`sdelab run --reuse`): the id hashes
    the whole cell config, so the copy is what this study would have computed. Copied via '.partial' like any
    cell, with the source recorded in 'reused_from.txt'."""
    for src_dir in sources:
        src = finished(Path(src_dir), folder_name)
        if src is None:
            continue
        work = begin(out_dir, folder_name)
        shutil.rmtree(work)
        shutil.copytree(src, work)
        write_text(work / "reused_from.txt", f"{src.resolve()}\n")
        return commit(work)
    return None


RESUMABLE = ("checkpoint", "eval")  # what an interrupted cell keeps for the next run; removed when it finishes


def kept(out_dir: Path, folder_name: str) -> list[str]:
    """What an interrupted run of the cell kept for resuming (names from RESUMABLE)."""
    return [n for n in RESUMABLE if (out_dir / (folder_name + PARTIAL) / n).exists()]


def work_folder(out_dir: Path, folder_name: str) -> Path:
    """Where a cell is built (the main process's `begin` makes it; the other processes of a launch read it)."""
    return out_dir / (folder_name + PARTIAL)


def begin(out_dir: Path, folder_name: str, resume: bool = False) -> Path:
    """The work folder of a cell: a fresh one, or with `resume` what an interrupted run of the same cell (the
    folder name ends with the id of its whole config) kept of its work."""
    only_main(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        work = work_folder(out_dir, folder_name)
        if work.exists() and resume:
            for p in work.iterdir():
                if p.name not in RESUMABLE:
                    shutil.rmtree(p) if p.is_dir() else p.unlink()
        elif work.exists():
            shutil.rmtree(work)
        work.mkdir(exist_ok=True)
        probe = work / ".write_test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise SdelabError(f"cannot write the run folder: {e.strerror}", path=out_dir) from None
    return work


def commit(work: Path) -> Path:
    """Make a finished cell visible (atomic rename), without the state kept for resuming."""
    only_main(work)
    for name in RESUMABLE:
        if (work / name).exists():
            shutil.rmtree(work / name)
    final = work.with_name(work.name[: -len(PARTIAL)])
    if final.exists():
        shutil.rmtree(final)
    os.replace(work, final)
    return final
