"""Semantic isotropy (Bhardwaj, Kempe and Rudner, arXiv 2510.21891) as a trust score.

Embed the N responses, scale each embedding to unit length and form the density matrix
``rho = sum_i w_i e_i e_i^T`` (uniform ``w_i = 1/N`` by default). Its nonzero eigenvalues are those
of ``K_w = W^(1/2) K W^(1/2)`` with ``K_ij = e_i . e_j`` the cosine kernel, so for uniform weights
they are the eigenvalues of ``K / N``. The isotropy is the von Neumann entropy

    S = -sum_k lambda_k log lambda_k,   0 <= S <= log N,

0 when every response points the same way, ``log N`` when they are mutually orthogonal (with
uniform weights). Responses that spread over many directions disagree semantically, which the
paper finds predicts lower factual consistency; the trust score is ``1 - S / log N`` in [0, 1].
"""

from __future__ import annotations

import math

import numpy as np

from .embed import unit_rows

EIGEN_FLOOR = 1e-12  # eigenvalues below this are rounding noise and count as zero


def semantic_isotropy(embeddings: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Von Neumann entropy of the (weighted) normalised cosine kernel; see the module docstring.

    Args:
        embeddings: ``(N, d)`` response embeddings (any length; each row is normalised).
        weights: ``(N,)`` non-negative weights (normalised here); None means uniform.
    """
    e = unit_rows(embeddings)
    n = e.shape[0]
    if n == 0:
        raise ValueError("semantic isotropy needs at least one response")
    if weights is None:
        w = np.full(n, 1.0 / n)
    else:
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != (n,) or np.any(w < 0) or not np.all(np.isfinite(w)) or w.sum() <= 0:
            raise ValueError("weights must be (N,) finite, non-negative and not all zero")
        w = w / w.sum()
    root = np.sqrt(w)
    kernel = (e @ e.T) * root[:, None] * root[None, :]
    lam = np.clip(np.linalg.eigvalsh(kernel), 0.0, None)
    lam = lam[lam > EIGEN_FLOOR]
    lam = lam / lam.sum()
    return float(max(-np.sum(lam * np.log(lam)), 0.0))


def isotropy_trust(isotropy: float, n: int) -> float:
    """``1 - isotropy / log n`` in [0, 1] (1 = every response agrees); nan for fewer than 2 responses."""
    if n < 2:
        return math.nan
    return float(min(max(1.0 - isotropy / math.log(n), 0.0), 1.0))
