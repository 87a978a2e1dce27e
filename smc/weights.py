"""Log-weight arithmetic shared by the inference algorithms.

All weights are kept in log space; ``-inf`` is a legal weight (a dead particle).
"""

from __future__ import annotations

import math

import numpy as np


def logsumexp(log_w: np.ndarray) -> float:
    """``log(sum(exp(log_w)))``, ``-inf`` for an empty or all ``-inf`` array.

    A float32 array (a vocabulary row) stays float32 through the exponentials and is summed in
    float64: one pass, no float64 copy of the row.
    """
    log_w = np.asarray(log_w)
    if log_w.dtype.kind != "f" or log_w.itemsize < 4:
        log_w = log_w.astype(np.float64)
    if log_w.size == 0:
        return -math.inf
    m = float(np.max(log_w))
    if m == -math.inf:
        return -math.inf
    if m == math.inf:
        return math.inf
    return m + math.log(float(np.sum(np.exp(log_w - m), dtype=np.float64)))


def logmeanexp(log_w: np.ndarray) -> float:
    """``log(mean(exp(log_w)))``: the log of an average importance weight."""
    log_w = np.asarray(log_w, dtype=np.float64)
    return logsumexp(log_w) - math.log(len(log_w)) if log_w.size else -math.inf


def normalise(log_w: np.ndarray) -> np.ndarray:
    """Normalised probabilities ``exp(log_w) / sum(exp(log_w))``; all zeros if every weight is -inf."""
    log_w = np.asarray(log_w, dtype=np.float64)
    z = logsumexp(log_w)
    if z == -math.inf:
        return np.zeros_like(log_w)
    return np.exp(log_w - z)


def ess(log_w: np.ndarray) -> float:
    """Effective sample size ``1 / sum(w_i^2)`` of the normalised weights (0 if all are dead)."""
    w = normalise(log_w)
    s = float(np.sum(w * w))
    return 1.0 / s if s > 0 else 0.0
