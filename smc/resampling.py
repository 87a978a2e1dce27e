"""Resampling schemes: one contract, one registry.

Every scheme is ``scheme(rng, weights, n) -> ancestors``:

- ``weights``: ``(M,)`` normalised probabilities (non-negative, summing to 1);
- returns ``(n,)`` int indices into ``weights``, sorted ascending; index ``i`` appears
  ``n * weights[i]`` times in expectation, and an index with weight 0 never appears.

Properties proven per scheme are stated in its docstring; nothing else is promised. Weights that
are NaN, infinite, negative or all zero raise ValueError.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Resampler = Callable[[np.random.Generator, np.ndarray, int], np.ndarray]


def check_weights(weights: np.ndarray) -> None:
    """Raise ValueError unless ``weights`` are finite, non-negative and not all zero."""
    if not np.all(np.isfinite(weights)) or np.any(weights < 0) or not np.any(weights > 0):
        raise ValueError(
            "resampling needs finite, non-negative weights that are not all zero; got "
            f"{np.asarray(weights)[:8]}{'...' if len(weights) > 8 else ''} (normalise finite log-weights first)"
        )


def inverse_cdf(u: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Indices ``i`` with ``cdf[i-1] <= u < cdf[i]`` for sorted ``u`` in [0, 1).

    Rounding at the top of the CDF maps to the last index with positive weight.
    """
    check_weights(weights)
    cdf = np.cumsum(weights)
    idx = np.searchsorted(cdf, u * cdf[-1], side="right")
    last = int(np.flatnonzero(weights > 0)[-1])
    return np.minimum(idx, last).astype(np.int64)


def multinomial(rng: np.random.Generator, weights: np.ndarray, n: int) -> np.ndarray:
    """Independent draws. Highest variance of the four; the reference scheme."""
    return inverse_cdf(np.sort(rng.random(n)), weights)


def stratified(rng: np.random.Generator, weights: np.ndarray, n: int) -> np.ndarray:
    """One uniform per stratum ``[k/n, (k+1)/n)``. Variance never above multinomial."""
    return inverse_cdf((np.arange(n) + rng.random(n)) / n, weights)


def systematic(rng: np.random.Generator, weights: np.ndarray, n: int) -> np.ndarray:
    """One shared uniform offset. Index ``i`` appears ``floor(n w_i)`` or ``ceil(n w_i)`` times."""
    return inverse_cdf((np.arange(n) + rng.random()) / n, weights)


def residual(rng: np.random.Generator, weights: np.ndarray, n: int) -> np.ndarray:
    """``floor(n w_i)`` copies of each index, the remainder drawn multinomially from the residuals.

    Index ``i`` appears at least ``floor(n w_i)`` times.
    """
    check_weights(weights)
    counts = np.floor(n * weights).astype(np.int64)
    rest = n - int(counts.sum())
    if rest > 0:
        res = n * weights - counts
        res = np.clip(res, 0.0, None)
        if res.sum() <= 0:  # rounding left no residual mass: fall back on the weights themselves
            res = weights.copy()
        counts += np.bincount(multinomial(rng, res / res.sum(), rest), minlength=len(weights))
    return np.repeat(np.arange(len(weights)), counts)


RESAMPLERS: dict[str, Resampler] = {
    "multinomial": multinomial,
    "stratified": stratified,
    "systematic": systematic,
    "residual": residual,
}


def get_resampler(name: str) -> Resampler:
    """The scheme registered under ``name``; an unknown name lists the valid ones."""
    try:
        return RESAMPLERS[name]
    except KeyError:
        raise ValueError(
            f"unknown resampling scheme {name!r}; choose one of {sorted(RESAMPLERS)}"
        ) from None
