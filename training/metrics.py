"""Calibration and diversity metrics for verbalised confidences and sampled groups.

- ``ece(conf, correct, n_bins=10)``: expected calibration error with equal-width bins,
  ``sum_b (n_b / n) |acc_b - conf_b|`` (the last bin includes 1.0).
- ``brier(conf, correct)``: mean ``(q - c)^2``.
- ``auroc(conf, correct)``: probability that a correct sample has higher confidence than an
  incorrect one (ties count 1/2); NaN when only one class is present.
- ``distinct_answers(groups)``: mean number of distinct extracted answers per group.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _pair(conf, correct) -> tuple[np.ndarray, np.ndarray]:
    q = np.asarray(conf, dtype=np.float64)
    c = np.asarray(correct, dtype=np.float64)
    if q.shape != c.shape or q.ndim != 1:
        raise ValueError(f"confidences and correctness must be 1-D of equal length, got {q.shape} and {c.shape}")
    if q.size and (q.min() < 0 or q.max() > 1):
        raise ValueError("confidences must lie in [0, 1]")
    return q, c


def ece(conf: Sequence[float], correct: Sequence[bool], n_bins: int = 10) -> float:
    """Expected calibration error (equal-width bins); NaN for no samples."""
    q, c = _pair(conf, correct)
    if q.size == 0:
        return float("nan")
    bins = np.minimum((q * n_bins).astype(int), n_bins - 1)
    total = 0.0
    for b in range(n_bins):
        sel = bins == b
        if sel.any():
            total += sel.mean() * abs(c[sel].mean() - q[sel].mean())
    return float(total)


def brier(conf: Sequence[float], correct: Sequence[bool]) -> float:
    """Mean squared error between confidence and correctness; NaN for no samples."""
    q, c = _pair(conf, correct)
    return float(np.mean((q - c) ** 2)) if q.size else float("nan")


def auroc(conf: Sequence[float], correct: Sequence[bool]) -> float:
    """Area under the ROC curve of confidence as a predictor of correctness (Mann-Whitney)."""
    q, c = _pair(conf, correct)
    pos, neg = q[c > 0.5], q[c <= 0.5]
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (pos.size * neg.size))


def distinct_answers(groups: Sequence[Sequence[str | None]]) -> float:
    """Mean number of distinct answers per group (a missing answer counts as one more answer)."""
    if not groups:
        return float("nan")
    return float(np.mean([len(set(g)) for g in groups]))
