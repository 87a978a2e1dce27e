"""Evaluation metrics for populations of answers: diversity, pass@k, calibration, ranking.

- ``distinct_answers(answers)``: how many different answers; None is no answer and is not counted
  (the rule of `answers`); ``mean_distinct_answers(groups)``: its mean over groups.
- ``pass_at_k(n, c, k)``: the chance that k of n samples, drawn without replacement, include one
  of the c correct ones: ``1 - C(n - c, k) / C(n, k)`` (the unbiased estimator of Chen et al.).
- ``brier(q, correct)``: mean ``(q - c)^2``; ``ece(q, correct)``: expected calibration error over
  equal-width bins.
- ``auroc(scores, labels)``: the probability that a random positive scores above a random negative
  (ties count one half); nan when either class is empty.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence

import numpy as np


def distinct_answers(answers: Sequence[Hashable | None]) -> int:
    """The number of different non-None answers."""
    return len({a for a in answers if a is not None})


def mean_distinct_answers(groups: Sequence[Sequence[Hashable | None]]) -> float:
    """The mean of `distinct_answers` over ``groups`` (nan when there are none)."""
    return float(np.mean([distinct_answers(g) for g in groups])) if groups else math.nan


def pass_at_k(n: int, c: int, k: int) -> float:
    """``1 - C(n - c, k) / C(n, k)`` for ``0 <= c <= n`` and ``1 <= k <= n``."""
    if not (0 <= c <= n and 1 <= k <= n):
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def confidence_pairs(confidences: Sequence[float], correct: Sequence[bool]) -> tuple[np.ndarray, np.ndarray]:
    """Confidences and correctness as float arrays; equal 1-D shapes and q in [0, 1], or ValueError."""
    q, c = np.asarray(confidences, dtype=float), np.asarray(correct, dtype=float)
    if q.shape != c.shape or q.ndim != 1:
        raise ValueError(f"confidences and correctness must be 1-D of equal length, got {q.shape} and {c.shape}")
    if q.size and (q.min() < 0 or q.max() > 1):
        raise ValueError("confidences must lie in [0, 1]")
    return q, c


def brier(confidences: Sequence[float], correct: Sequence[bool]) -> float:
    """Mean squared difference between stated confidence and correctness."""
    q, c = confidence_pairs(confidences, correct)
    return float(np.mean((q - c) ** 2)) if q.size else math.nan


def ece(confidences: Sequence[float], correct: Sequence[bool], n_bins: int = 10) -> float:
    """Expected calibration error: bin-size-weighted mean of |accuracy - mean confidence|."""
    q, c = confidence_pairs(confidences, correct)
    if not q.size:
        return math.nan
    bins = np.minimum((q * n_bins).astype(int), n_bins - 1)
    total = 0.0
    for b in np.unique(bins):
        sel = bins == b
        total += sel.sum() * abs(c[sel].mean() - q[sel].mean())
    return float(total / q.size)


def auroc(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """Area under the ROC curve of ``scores`` for predicting ``labels`` (Mann-Whitney form)."""
    s, y = np.asarray(scores, dtype=float), np.asarray(labels, dtype=bool)
    pos, neg = s[y], s[~y]
    if not pos.size or not neg.size:
        return math.nan
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (pos.size * neg.size))
