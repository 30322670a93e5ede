"""Nothing a user writes makes sdelab read or write outside the study's own folders: study names that are paths or
markdown are refused, YAML alias bombs are refused before they expand, and --publish replaces only what sdelab
published before."""
import json
import time

import pytest
import yaml

from sdelab.cli import main
from sdelab.report.publish import MANIFEST, publish

from test_bad_input import setup


@pytest.mark.parametrize("name", ["../../x", "..", "", ".hidden", "a/b", "x\n![a](../../secret.txt)", "a" * 101,
                                  "a b"])
def test_unsafe_study_names_are_refused(tmp_path, tiny_model_dir, capsys, name):
    p = setup(tmp_path, tiny_model_dir, study_extra={"name": name})
    assert main(["run", str(p)]) == 2
    err = capsys.readouterr().err
    assert "study.yaml:" in err and "name" in err and "Traceback" not in err, err
    assert not (tmp_path / "runs").exists() and not (tmp_path.parent / "x").exists()


def test_unicode_names_are_fine(tmp_path, tiny_model_dir):
    from sdelab.config import load_study
    p = setup(tmp_path, tiny_model_dir, study_extra={"name": "情感-v2.1"})
    assert load_study(p)[0].name == "情感-v2.1"


def test_yaml_alias_bomb_is_refused_fast(tmp_path, capsys):
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]']
    for i in range(1, 9):  # 10^9 values once expanded, in under 600 bytes
        prev = chr(ord("a") + i - 1)
        cur = chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 10) + "]")
    p = tmp_path / "bomb.yaml"
    p.write_text("name: bomb\ntask: demo-reviews\n" + "\n".join(lines) + "\n")
    assert len(p.read_bytes()) < 800
    t = time.perf_counter()
    assert main(["run", str(p)]) == 2
    assert time.perf_counter() - t < 5
    err = capsys.readouterr().err
    assert "bomb.yaml" in err and "aliases" in err and "Traceback" not in err, err


def test_a_directory_where_a_study_belongs(tmp_path, capsys):
    (tmp_path / "s.yaml").mkdir()
    assert main(["run", str(tmp_path / "s.yaml")]) == 2
    err = capsys.readouterr().err
    assert "s.yaml" in err and "directory" in err and "Traceback" not in err, err


def report_folder(tmp_path):
    out = tmp_path / "runs" / "s"
    (out / "plots").mkdir(parents=True)
    (out / "report.md").write_text("# r\n")
    (out / "study.yaml").write_text("name: s\n")
    (out / "plots" / "scores.svg").write_bytes(b"\x89PNG new")
    return out


def test_publish_refuses_to_overwrite_what_it_did_not_write(tmp_path):
    out, dest = report_folder(tmp_path), tmp_path / "pub"
    (dest / "plots").mkdir(parents=True)
    (dest / "study.yaml").write_text("someone else's\n")
    (dest / "plots" / "mine.svg").write_bytes(b"mine")
    from sdelab.errors import SdelabError
    with pytest.raises(SdelabError, match="study.yaml"):
        publish(out, dest)
    assert (dest / "study.yaml").read_text() == "someone else's\n"
    (dest / "study.yaml").unlink()
    assert publish(out, dest) == ["plots/scores.svg", "report.md", "study.yaml"]
    assert (dest / "plots" / "mine.svg").read_bytes() == b"mine"  # not on the list: never touched
    assert json.loads((dest / MANIFEST).read_text())["files"] == ["plots/scores.svg", "report.md", "study.yaml"]


def test_publish_replaces_and_prunes_only_its_own_files(tmp_path):
    out, dest = report_folder(tmp_path), tmp_path / "pub"
    publish(out, dest)
    (dest / "README.md").write_text("notes\n")
    (out / "plots" / "scores.svg").unlink()
    (out / "plots" / "forest.svg").write_bytes(b"\x89PNG other")
    (out / "report.md").write_text("# r2\n")
    publish(out, dest)
    assert not (dest / "plots" / "scores.svg").exists()  # sdelab's old plot, no longer drawn
    assert (dest / "plots" / "forest.svg").read_bytes() == b"\x89PNG other"
    assert (dest / "report.md").read_text() == "# r2\n" and (dest / "README.md").read_text() == "notes\n"


def test_a_manifest_cannot_point_outside_the_folder(tmp_path):
    out, dest = report_folder(tmp_path), tmp_path / "pub"
    dest.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    (dest / MANIFEST).write_text(json.dumps({"files": ["../victim.txt", str(victim)]}))
    publish(out, dest)
    assert victim.read_text() == "keep"


def test_report_html_embeds_only_sdelab_plots(tmp_path):
    from sdelab.report.html import to_html
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET")
    page = to_html(f"# x\n![a]({secret})\n![b](../../secret.txt)\n<img src='{secret}'>\n", {})
    assert "TOP SECRET" not in page and "base64" not in page and "<img" not in page


@pytest.mark.parametrize("template, expect", [("{txt} {", "{txt}, not an input field"),
                                              ("Review:", "never writes {text}")])
def test_templates_that_lose_the_input_are_refused(tmp_path, tiny_model_dir, capsys, template, expect):
    p = setup(tmp_path, tiny_model_dir)
    task = tmp_path / "task" / "task.yaml"
    task.write_text(task.read_text().replace('input: "{text}"', f"input: {json.dumps(template)}"))
    assert main(["run", str(p)]) == 2
    err = capsys.readouterr().err
    assert "task.yaml" in err and expect in err and "Traceback" not in err, err


@pytest.mark.parametrize("extra, expect", [({"train_sizes": [-5]}, "at least 1"), ({"train_sizes": [0]}, "at least 1"),
                                           ({"train": {"epochs": 0.01, "batch_size": 3, "precision": "fp32"}},
                                            "no training step")])
def test_sizes_that_make_no_sense_are_refused(tmp_path, tiny_model_dir, capsys, extra, expect):
    p = setup(tmp_path, tiny_model_dir, study_extra=extra)
    assert main(["run", str(p)]) == 2
    err = capsys.readouterr().err
    assert expect in err and "Traceback" not in err, err
    assert not list((tmp_path / "runs").glob("*/metrics.json")) if (tmp_path / "runs").exists() else True


def test_publish_never_follows_links_or_hand_edited_lists(tmp_path):
    from sdelab.errors import SdelabError
    out, dest = report_folder(tmp_path), tmp_path / "pub"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "id_rsa").write_text("key")
    dest.mkdir()
    (dest / "plots").symlink_to(elsewhere)
    (dest / MANIFEST).write_text(json.dumps({"files": ["plots/id_rsa"]}))
    with pytest.raises(SdelabError, match="plots"):
        publish(out, dest)
    assert (elsewhere / "id_rsa").read_text() == "key" and not (elsewhere / "scores.svg").exists()
    (dest / "plots").unlink()
    (dest / "README.md").write_text("mine")
    (dest / MANIFEST).write_text(json.dumps({"files": ["README.md", "./report.md", "plots", "notes/x"]}))
    publish(out, dest)
    assert (dest / "README.md").read_text() == "mine" and (dest / "report.md").exists()


def test_published_files_are_readable_by_others(tmp_path):
    out, dest = report_folder(tmp_path), tmp_path / "pub"
    publish(out, dest)
    assert (dest / "report.md").stat().st_mode & 0o044 == 0o044


def test_recursive_yaml_alias_is_refused(tmp_path, capsys):
    p = tmp_path / "loop.yaml"
    p.write_text("name: loop\ntask: demo-reviews\ndesigns: &a [*a]\n")
    assert main(["run", str(p)]) == 2
    err = capsys.readouterr().err
    assert "loop.yaml" in err and "Traceback" not in err, err


def test_sweeping_a_speed_only_setting_is_refused(tmp_path, tiny_model_dir, capsys):
    p = setup(tmp_path, tiny_model_dir, study_extra={"sweep": {"compile": ["on", "off"]}})
    assert main(["run", str(p)]) == 2
    assert "cannot sweep 'compile'" in capsys.readouterr().err
