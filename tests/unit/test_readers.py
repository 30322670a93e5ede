import json

import pytest

from sdelab.errors import SdelabError
from sdelab.tasks.readers import read_rows


def test_jsonl_with_column_map(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_text('{"sentence": "hi", "y": 1}\n\n{"sentence": "yo", "y": 0}\n')
    rows = read_rows(p, columns={"text": "sentence", "label": "y"})
    assert [(r.values["text"], r.values["label"], r.line) for r in rows] == [("hi", "1", 1), ("yo", "0", 3)]


def test_json_array_keeps_line_numbers(tmp_path):
    p = tmp_path / "a.json"
    p.write_text(json.dumps([{"input": "a", "output": "x"}, {"input": "b", "output": "y"}], indent=2))
    rows = read_rows(p)
    assert [r.values["input"] for r in rows] == ["a", "b"]
    assert rows[0].line == 2 and rows[1].line == 6


def test_csv_with_bom_and_quotes(tmp_path):
    p = tmp_path / "a.csv"
    p.write_bytes('\ufeffsentence1,sentence2,label\n"a, b",c,1\n'.encode("utf-8"))
    rows = read_rows(p)
    assert rows[0].values == {"sentence1": "a, b", "sentence2": "c", "label": "1"}
    assert rows[0].line == 2


def test_tsv_keeps_quote_characters(tmp_path):
    p = tmp_path / "a.tsv"
    p.write_text('text_a\ttext_b\tlabel\nhe said " hi\tok\t1\n')
    assert read_rows(p)[0].values["text_a"] == 'he said " hi'


def test_prefixed_format(tmp_path):
    p = tmp_path / "stsa.binary.dev"
    p.write_text("1 a fine film .\n0 dull\n")
    rows = read_rows(p, fmt="prefixed")
    assert [(r.values["label"], r.values["text"]) for r in rows] == [("1", "a fine film ."), ("0", "dull")]


@pytest.mark.parametrize("name,content,fmt,expect", [
    ("bad.jsonl", '{"a": 1}\n{"a": \n', None, ":2: malformed JSON"),
    ("bad.csv", "a,b\n1,2\n1,2,3\n", None, ":3: expected 2 columns"),
    ("empty.jsonl", "\n\n", None, "empty"),
    ("x.txt", "1 a", None, "cannot tell the format"),
])
def test_bad_files_name_file_and_line(tmp_path, name, content, fmt, expect):
    p = tmp_path / name
    p.write_text(content)
    with pytest.raises(SdelabError) as e:
        read_rows(p, fmt=fmt)
    assert name in str(e.value) and expect in str(e.value)


def test_missing_column_names_field_and_line(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_text('{"text": "a", "label": "1"}\n')
    with pytest.raises(SdelabError, match=r"a.jsonl:1: field 'text_b': column 'sentence2'"):
        read_rows(p, columns={"text_b": "sentence2"})


def test_wrong_encoding_is_named(tmp_path):
    p = tmp_path / "gbk.tsv"
    p.write_bytes("text\tlabel\n".encode() + "你好\t1\n".encode("gbk"))
    with pytest.raises(SdelabError, match=r"gbk.tsv:2: not valid UTF-8"):
        read_rows(p)
