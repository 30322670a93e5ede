"""In-context demonstrations inside every sample (FTICL): choose k examples per sample from a pool.

fixed   the same k for every sample (as the generalization paper did), drawn once with the seed
random  k per sample, seeded by (seed, sample id)
similar the k nearest neighbours of the sample's input by TF-IDF cosine or BM25 — never the sample itself
"""
from __future__ import annotations

import hashlib
import math
import random
import re
from collections import Counter

import numpy as np

from sdelab.design.options import Design
from sdelab.errors import SdelabError
from sdelab.tasks.task import Example


def _text(ex: Example) -> str:
    return "\n".join(ex.fields.values())


def _same(a: Example, b: Example) -> bool:
    return a.id == b.id or a.fields == b.fields


def tokens(text: str) -> list[str]:
    """Words for latin text, single characters and character bigrams for CJK."""
    out = re.findall(r"[A-Za-z0-9]+", text.lower())
    cjk = re.findall(r"[\u4e00-\u9fff]", text)
    return out + cjk + [a + b for a, b in zip(cjk, cjk[1:])]


def choose_demos(design: Design, pool: list[Example], queries: list[Example], seed: int) -> list[list[Example]]:
    """For each query, the demonstrations to put in its sample (empty lists when design.demos == 0)."""
    k = design.demos
    if k == 0:
        return [[] for _ in queries]
    if len(pool) <= k:
        raise SdelabError(f"design '{design.name}' asks for {k} demonstrations but the pool has only {len(pool)} "
                          "examples", field="designs")
    if design.demo_selection == "fixed":
        fixed = random.Random(seed).sample(pool, k)
        spare = [p for p in pool if p not in fixed]
        # a query that is itself one of the fixed demonstrations gets a substitute from the rest of the pool
        return [[d if not _same(d, q) else spare[i % len(spare)] for i, d in enumerate(fixed)] for q in queries]
    if design.demo_selection == "random":
        out = []
        for q in queries:
            h = int(hashlib.sha256(f"{seed}:{q.id}:{_text(q)}".encode()).hexdigest()[:12], 16)
            cand = random.Random(h).sample(pool, k + 1)
            out.append([d for d in cand if not _same(d, q)][:k])
        return out
    scorer = _bm25 if design.demo_similarity == "bm25" else _tfidf
    scores = scorer([_text(p) for p in pool], [_text(q) for q in queries])
    out = []
    for qi, q in enumerate(queries):
        order = np.argsort(-scores[qi], kind="stable")
        out.append([pool[j] for j in order if not _same(pool[j], q)][:k])
    return out


def _tfidf(docs: list[str], queries: list[str]) -> np.ndarray:
    from sklearn.feature_extraction.text import TfidfVectorizer
    vec = TfidfVectorizer(analyzer=tokens)
    d = vec.fit_transform(docs)
    q = vec.transform(queries)
    return (q @ d.T).toarray()


def _bm25(docs: list[str], queries: list[str], k1: float = 1.5, b: float = 0.75) -> np.ndarray:
    """Okapi BM25 (no common library does it with sklearn's sparse tools; 20 lines)."""
    toks = [tokens(x) for x in docs]
    n, avg = len(toks), (sum(map(len, toks)) / max(1, len(toks))) or 1.0
    df = Counter(t for d in toks for t in set(d))
    idf = {t: math.log(1 + (n - c + 0.5) / (c + 0.5)) for t, c in df.items()}
    postings: dict[str, list[tuple[int, int]]] = {}
    for j, d in enumerate(toks):
        for t, f in Counter(d).items():
            postings.setdefault(t, []).append((j, f))
    norm = [k1 * (1 - b + b * len(d) / avg) for d in toks]
    out = np.zeros((len(queries), n))
    for qi, q in enumerate(queries):
        for t in set(tokens(q)):
            for j, f in postings.get(t, ()):
                out[qi, j] += idf[t] * f * (k1 + 1) / (f + norm[j])
    return out
