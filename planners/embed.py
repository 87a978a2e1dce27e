"""On-disk cache of the library's embeddings.

The library planner embeds the same fixed texts (program descriptions and examples) on every
start; `embed_cached` keeps them under ``$SELFSTEER_CACHE/embeddings``, keyed by the embedder's
name and the texts. The embedder itself is `selfsteer.smc.scaling.load_embedder` (the bundled
all-MiniLM-L6-v2 by default).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from selfsteer.smc.scaling.embed import Embedder


def cache_dir() -> Path:
    return Path(os.environ.get("SELFSTEER_CACHE", Path.home() / ".cache" / "selfsteer")) / "embeddings"


def embed_cached(embedder: Embedder, texts: Sequence[str]) -> np.ndarray:
    """``embedder(texts)``, read from (or written to) the on-disk cache.

    The key is the embedder's ``name`` attribute (its model folder) and the texts; an embedder
    without a name is never cached.
    """
    name = getattr(embedder, "name", None)
    if name is None:
        return embedder(texts)
    key = hashlib.sha256(json.dumps([name, list(texts)]).encode()).hexdigest()[:24]
    path = cache_dir() / f"{key}.npy"
    if path.is_file():
        cached = np.load(path)
        if cached.shape[0] == len(texts):
            return cached
    vectors = embedder(texts)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}.npy")
        np.save(tmp, vectors)
        tmp.replace(path)
    except OSError:
        pass  # a read-only cache only costs recomputation
    return vectors
