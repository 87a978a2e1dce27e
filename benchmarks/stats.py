"""Ratios of two systems' timings over paired seeds, with bootstrap intervals.

Both systems run the same seeds, so seed i gives a pair ``(a[i], b[i])``. A ratio statistic is
``stat(b) / stat(a)`` (``stat`` = median or mean); its interval resamples seeds with replacement,
the same indices for both systems (a paired bootstrap), and takes the percentiles of the ratios,
rounded outwards to the nearest resampled ratio.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np

STATS: dict[str, Callable[[np.ndarray], float]] = {"median": np.median, "mean": np.mean}


def paired(runs: Iterable[dict], a: str, b: str, key: str, task: str | None = None) -> tuple[list, list]:
    """``key`` of systems ``a`` and ``b`` (on ``task``, if given) from run dicts (`RunRecord.to_dict`),
    one pair per repeat (seed) that both completed without error, in repeat order."""
    values: dict[str, dict[int, float]] = {a: {}, b: {}}
    for r in runs:
        if r["system"] in values and (task is None or r["task"] == task) and not r.get("error"):
            values[r["system"]][r["repeat"]] = r[key]
    seeds = sorted(values[a].keys() & values[b].keys())
    return [values[a][i] for i in seeds], [values[b][i] for i in seeds]


def ratio(a: Sequence[float], b: Sequence[float], stat: str = "median") -> float:
    """``stat(b) / stat(a)``: how many times larger b's statistic is than a's."""
    f = STATS[stat]
    return float(f(np.asarray(b, dtype=float)) / f(np.asarray(a, dtype=float)))


def paired_bootstrap(
    a: Sequence[float], b: Sequence[float], stat: str = "median", *, level: float = 0.9,
    n_boot: int = 5000, seed: int = 0,
) -> tuple[float, float]:
    """The ``level`` percentile interval of ``stat(b) / stat(a)`` over seeds resampled in pairs.

    ``a`` and ``b`` hold one positive number per seed, in the same seed order.
    """
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape or x.ndim != 1 or len(x) == 0:
        raise ValueError(f"a and b need one value per seed, in the same order; got shapes {x.shape} and {y.shape}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    f = STATS[stat]
    idx = np.random.default_rng(seed).integers(0, len(x), size=(n_boot, len(x)))
    ratios = f(y[idx], axis=1) / f(x[idx], axis=1)
    tail = 100 * (1 - level) / 2
    lo = np.percentile(ratios, tail, method="lower")  # rounded outwards: swapping a and b inverts exactly
    hi = np.percentile(ratios, 100 - tail, method="higher")
    return float(lo), float(hi)
