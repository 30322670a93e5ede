"""Read rows from jsonl / json / csv / tsv / 'prefixed' text files, with a column map.

Every row keeps its 1-based line number so later errors can point at it. Nothing here knows about tasks.
"""
from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from sdelab.errors import SdelabError

_EXT = {".jsonl": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "tsv"}


@dataclass(frozen=True)
class Row:
    values: dict[str, str]
    line: int  # 1-based line in the file (for json arrays: the line where the object starts)


def guess_format(path: Path) -> str:
    fmt = _EXT.get(path.suffix.lower())
    if fmt is None:
        raise SdelabError(f"cannot tell the format from the extension '{path.suffix}'; set 'format' to one of "
                          f"{', '.join(READERS)} or a data-set layout (docs/data.md)", path=path)
    return fmt


def check_file(path: Path) -> None:
    """A data file is a readable regular file: a missing one, a folder, a link to nowhere (a loop such as
    `ln -s loop loop`, or a missing target) or an unreadable one is named as such."""
    if path.is_symlink() and not path.exists():
        raise SdelabError(f"a symbolic link that leads nowhere (to {os.readlink(path)}: a link loop, or a missing "
                          "file); point it at the data file", path=path)
    if not path.exists():
        raise SdelabError("data file not found", path=path)
    if path.is_dir():
        raise SdelabError("is a folder, not a data file; give the path of a file in it", path=path)
    if not path.is_file():
        raise SdelabError("not a regular file (a device or a pipe?); give the path of a data file", path=path)


def read_text(path: Path) -> str:
    """UTF-8 (with or without BOM); anything else is named as an error with the offending line."""
    check_file(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise SdelabError(f"cannot read the data file: {e.strerror}", path=path) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise SdelabError(f"not valid UTF-8 (byte 0x{raw[e.start]:02x} at offset {e.start}); "
                          "convert the file to UTF-8", path=path, line=line) from None
    if not text.strip():
        raise SdelabError("the data file is empty", path=path)
    return text


def read_rows(path: str | Path, fmt: str | None = None, columns: dict[str, str] | None = None,
              readers: dict[str, Callable] | None = None) -> list[Row]:
    """Rows of `path` as {field: value}. `columns` maps field name -> column (key) name in the file;
    fields not in the map are read from the column of the same name. `readers`: format name -> fn(text, path)
    (default: the plain formats of READERS; sdelab.tasks.formats passes the data-set layouts too)."""
    path = Path(path)
    readers = READERS if readers is None else readers
    check_file(path)  # before guessing the format from a name that may not be a file at all
    fmt = fmt or guess_format(path)
    if fmt not in readers:
        raise SdelabError(f"unknown format '{fmt}'; known: {', '.join(readers)}", path=path, field="format")
    rows = readers[fmt](read_text(path), path)
    if not rows:
        raise SdelabError("the data file holds no rows", path=path)
    if columns:
        rows = [_apply_columns(r, columns, path) for r in rows]
    return rows


def _apply_columns(row: Row, columns: dict[str, str], path: Path) -> Row:
    out = dict(row.values)
    for fieldname, col in columns.items():
        if col not in row.values:
            raise SdelabError(f"column '{col}' (mapped to field '{fieldname}') is missing; the row has: "
                              f"{', '.join(row.values) or 'nothing'}", path=path, line=row.line, field=fieldname)
        out[fieldname] = row.values[col]
    return Row(out, row.line)


def _scalar(v) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, (int, float)) or v is None:
        return "" if v is None else str(v)
    return json.dumps(v, ensure_ascii=False)


def _obj_row(obj, path: Path, line: int) -> Row:
    if not isinstance(obj, dict):
        raise SdelabError(f"expected a JSON object, got {type(obj).__name__}", path=path, line=line)
    return Row({str(k): _scalar(v) for k, v in obj.items()}, line)


class DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    """object_pairs_hook: a JSON object that names a key twice is ambiguous (json keeps the last silently)."""
    out: dict = {}
    for k, v in pairs:
        if k in out:
            raise DuplicateKey(k)
        out[k] = v
    return out


def _loads(text: str):
    return json.loads(text, object_pairs_hook=_no_duplicates)


def jsonl_objects(text: str, path: Path) -> list[tuple[int, dict]]:
    """(line, object) for every non-blank line of a JSON Lines text; malformed lines name file and line."""
    out = []
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = _loads(line)
        except json.JSONDecodeError as e:
            raise SdelabError(f"malformed JSON ({e.msg} at column {e.colno})", path=path, line=i) from None
        except DuplicateKey as e:
            raise SdelabError(f"the key '{e}' appears twice in one object: which value is meant?", path=path,
                              line=i) from None
        if not isinstance(obj, dict):
            raise SdelabError(f"expected a JSON object, got {type(obj).__name__}", path=path, line=i)
        out.append((i, obj))
    return out


def _jsonl(text: str, path: Path) -> list[Row]:
    return [_obj_row(obj, path, i) for i, obj in jsonl_objects(text, path)]


def _json_array(text: str, path: Path) -> list[Row]:
    try:
        data = _loads(text)
    except json.JSONDecodeError as e:
        raise SdelabError(f"malformed JSON ({e.msg} at column {e.colno})", path=path, line=e.lineno) from None
    except DuplicateKey as e:
        raise SdelabError(f"the key '{e}' appears twice in one object: which value is meant?", path=path,
                          line=_duplicate_line(text)) from None
    if isinstance(data, dict):  # {"data": [...]} is common
        lists = [v for v in data.values() if isinstance(v, list)]
        if len(lists) != 1:
            raise SdelabError("expected a JSON array of objects (or an object holding exactly one array)", path=path)
        data = lists[0]
    if not isinstance(data, list):
        raise SdelabError("expected a JSON array of objects", path=path)
    # line numbers of top-level objects: scan with the decoder's positions
    starts = _array_item_lines(text)
    return [_obj_row(obj, path, starts[i] if i < len(starts) else 1) for i, obj in enumerate(data)]


def _duplicate_line(text: str) -> int | None:
    """The line of the first top-level array item that names a key twice."""
    dec = json.JSONDecoder(object_pairs_hook=_no_duplicates)
    for start in _array_item_starts(text):
        try:
            dec.raw_decode(text, start)
        except DuplicateKey:
            return text.count("\n", 0, start) + 1
        except json.JSONDecodeError:
            return None
    return None


def _array_item_starts(text: str) -> list[int]:
    dec, starts = json.JSONDecoder(), []
    i = text.find("[")
    if i < 0:
        return starts
    i += 1
    n = len(text)
    while i < n:
        while i < n and text[i] in " \t\r\n,":
            i += 1
        if i >= n or text[i] == "]":
            break
        try:
            _, end = dec.raw_decode(text, i)
        except json.JSONDecodeError:
            break
        starts.append(i)
        i = end
    return starts


def _array_item_lines(text: str) -> list[int]:
    return [text.count("\n", 0, i) + 1 for i in _array_item_starts(text)]


def _delimited(text: str, path: Path, fmt: str) -> list[Row]:
    delim = "\t" if fmt == "tsv" else ","
    quoting = csv.QUOTE_NONE if fmt == "tsv" else csv.QUOTE_MINIMAL
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delim, quoting=quoting)
    try:
        header = next(reader)
    except StopIteration:
        raise SdelabError("the data file is empty", path=path) from None
    header = [h.strip() for h in header]
    seen: set[str] = set()
    for h in header:
        if h in seen:
            raise SdelabError(f"the header names the column '{h}' twice: which one is meant?", path=path, line=1)
        seen.add(h)
    rows = []
    for rec in reader:
        line = reader.line_num
        if not rec or all(not c.strip() for c in rec):
            continue
        if len(rec) != len(header):
            raise SdelabError(f"expected {len(header)} columns ({', '.join(header)}), found {len(rec)}",
                              path=path, line=line)
        rows.append(Row(dict(zip(header, rec)), line))
    return rows


def _prefixed(text: str, path: Path) -> list[Row]:
    """'<label> <text>' per line (the SST-2 stsa.binary files)."""
    rows = []
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        label, _, rest = line.strip().partition(" ")
        if not rest.strip():
            raise SdelabError("expected '<label> <text>'", path=path, line=i)
        rows.append(Row({"label": label, "text": rest.strip()}, i))
    return rows


def file_sha256(path: str | Path) -> str:
    import hashlib
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


READERS: dict[str, Callable] = {"jsonl": _jsonl, "json": _json_array, "csv": lambda t, p: _delimited(t, p, "csv"),
                                "tsv": lambda t, p: _delimited(t, p, "tsv"), "prefixed": _prefixed}
