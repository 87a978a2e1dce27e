"""Distributions that programs `sample` from and `observe`.

Contract (every distribution):

- ``await d.sample(rng) -> (x, log_p)``: an exact draw ``x ~ d`` and its log-probability.
- ``await d.log_prob(x) -> float``: ``log d(x)``; ``-inf`` outside the support, never an error.
- ``await d.propose(rng) -> (x, log_w)``: a properly weighted draw for the measure ``d``
  represents: ``E[exp(log_w) f(x)] = sum_x d(x) f(x)`` for every f. Exact samplers return
  ``log_w = 0``; samplers of restricted or constrained measures return their importance weight.
  ``Model.sample(d)`` uses this.
- ``d.record(x)``: called by ``Model.sample``/``observe`` once ``x`` is chosen; stateful
  distributions (an LM's next token) commit ``x`` here. ``sample`` and ``log_prob`` never change
  state.

A distribution with no mass at all (every value impossible) raises ``ZeroProbability`` from
``sample``; the engine turns that into a dead particle, never an error for the caller.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

from .weights import logsumexp


class ZeroProbability(Exception):
    """A draw was asked of a distribution with no mass (the particle will die)."""


class Distribution:
    """Base class: subclasses implement `sample` and `log_prob`."""

    async def sample(self, rng: np.random.Generator) -> tuple[Any, float]:
        raise NotImplementedError

    async def log_prob(self, value: Any) -> float:
        raise NotImplementedError

    async def propose(self, rng: np.random.Generator) -> tuple[Any, float]:
        value, _ = await self.sample(rng)
        return value, 0.0

    def record(self, value: Any) -> None:
        """Commit ``value`` as the outcome (no-op for stateless distributions)."""


BLOCK = 256  # entries per block in `sample_weights`' two-level search


def sample_log_probs(rng: np.random.Generator, log_probs: np.ndarray) -> int:
    """Draw an index with probability proportional to ``exp(log_probs)`` (unnormalised is fine).

    Uses one uniform per draw (inverse CDF), so a draw depends only on ``rng`` and the weights.
    Raises `ZeroProbability` when every entry is ``-inf``.
    """
    log_probs = np.asarray(log_probs)
    m = np.max(log_probs)
    if not np.isfinite(m):
        raise ZeroProbability("every value has probability zero")
    return sample_weights(rng, np.exp(log_probs - m))


def sample_weights(rng: np.random.Generator, weights: np.ndarray) -> int:
    """Draw an index with probability proportional to ``weights`` (>= 0, positive sum).

    Inverse CDF on one uniform, searched in two levels (sums of blocks of `BLOCK` entries, then
    within the chosen block), so a vocabulary-sized draw costs vectorised sums instead of a
    sequential cumulative sum over the whole array.
    """
    starts = np.arange(0, len(weights), BLOCK)
    block_sums = np.add.reduceat(weights, starts)
    block_cdf = np.cumsum(block_sums, dtype=np.float64)
    u = rng.random() * block_cdf[-1]
    b = int(np.searchsorted(block_cdf, u, side="right"))
    if b >= len(starts):  # rounding at the top end: the last block with mass
        b = int(np.flatnonzero(block_sums > 0)[-1])
    block = weights[starts[b] : starts[b] + BLOCK]
    j = int(np.searchsorted(np.cumsum(block, dtype=np.float64), u - (block_cdf[b - 1] if b else 0.0), side="right"))
    if j >= len(block) or block[j] <= 0:  # rounding inside the block: its last entry with mass
        j = int(np.flatnonzero(block > 0)[-1])
    return int(starts[b]) + j


class Bernoulli(Distribution):
    """``True`` with probability ``p``."""

    def __init__(self, p: float):
        if not 0.0 <= p <= 1.0 or math.isnan(p):
            raise ValueError(f"Bernoulli needs 0 <= p <= 1, got {p}")
        self.p = float(p)

    async def sample(self, rng):
        x = bool(rng.random() < self.p)
        return x, await self.log_prob(x)

    async def log_prob(self, value):
        q = self.p if value else 1.0 - self.p
        return math.log(q) if q > 0 else -math.inf


class Categorical(Distribution):
    """A distribution over arbitrary values, from ``probs`` or ``logits`` (one of them).

    ``values`` defaults to ``range(len(weights))``. Equal values are allowed; ``log_prob`` sums their
    mass. ``probs`` need not be normalised but must be non-negative with a positive sum.
    """

    def __init__(
        self,
        probs: Sequence[float] | np.ndarray | None = None,
        *,
        logits: Sequence[float] | np.ndarray | None = None,
        values: Sequence[Hashable] | None = None,
    ):
        if (probs is None) == (logits is None):
            raise ValueError("Categorical needs exactly one of probs= or logits=")
        if probs is not None:
            p = np.asarray(probs, dtype=np.float64)
            if p.ndim != 1 or p.size == 0 or np.any(p < 0) or not np.all(np.isfinite(p)):
                raise ValueError("Categorical probs must be a non-empty 1-D array of finite values >= 0")
            with np.errstate(divide="ignore"):
                log_p = np.log(p)
        else:
            log_p = np.asarray(logits, dtype=np.float64)
            if log_p.ndim != 1 or log_p.size == 0 or np.any(np.isnan(log_p)) or np.any(log_p == np.inf):
                raise ValueError("Categorical logits must be a non-empty 1-D array without NaN or +inf")
        z = logsumexp(log_p)
        self.log_probs = log_p - z if np.isfinite(z) else log_p
        self.values = list(values) if values is not None else list(range(len(log_p)))
        if len(self.values) != len(log_p):
            raise ValueError(f"Categorical got {len(self.values)} values for {len(log_p)} weights")

    async def sample(self, rng):
        i = sample_log_probs(rng, self.log_probs)
        return self.values[i], await self.log_prob(self.values[i])

    async def log_prob(self, value):
        idx = [i for i, v in enumerate(self.values) if v == value]
        return logsumexp(self.log_probs[idx]) if idx else -math.inf


class Geometric(Distribution):
    """Number of failures before the first success: ``P(k) = (1-p)^k p`` for k = 0, 1, 2, ..."""

    def __init__(self, p: float):
        if not 0.0 < p <= 1.0:
            raise ValueError(f"Geometric needs 0 < p <= 1, got {p}")
        self.p = float(p)

    async def sample(self, rng):
        k = int(rng.geometric(self.p)) - 1
        return k, await self.log_prob(k)

    async def log_prob(self, value):
        if not isinstance(value, (int, np.integer)) or value < 0:
            return -math.inf
        if self.p == 1.0:
            return 0.0 if value == 0 else -math.inf
        return value * math.log1p(-self.p) + math.log(self.p)
