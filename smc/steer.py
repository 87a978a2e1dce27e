"""SMC-steer: beam-like SMC with without-replacement ("optimal") resampling.

Each step expands every unfinished particle into ``n_beam`` copies, steps them, and keeps at most
``n_particles`` of the pool: particles with large weight are kept deterministically, the rest are
thinned by systematic resampling without replacement (Fearnhead and Clifford, 2003). Finished
particles are kept, not expanded, so the method behaves like a stochastic beam search.

Weights keep ``mean(exp(log_w))`` an unbiased estimate of the normalising constant at every
step, so ``result.log_ml`` is unbiased as for `smc`. It runs the same loop as `smc`
(`selfsteer.smc.inference.run_loop`) with the `Steer` strategy; every step resamples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .inference import reseed, run_interruptible, run_loop, validate_model, validate_settings
from .model import Model
from .resampling import systematic
from .result import Result
from .trace import Trace
from .weights import logsumexp, normalise


def n_kept_whole(weights: np.ndarray, n: int) -> int:
    """How many of the largest normalised ``weights`` (more than ``n`` of them positive) are kept
    whole: the smallest ``k`` with ``c_k * w_(k) < 1`` for ``c_k = (n - k) / sum(w_(k:))``, the
    ``c`` with ``sum(min(1, c * w)) = n`` (``w_(k)`` sorted descending).

    At ``k = n - 1`` the condition holds whenever a smaller positive weight follows, so the search
    stops there even where rounding (one weight within float precision of 1) says otherwise.
    """
    w = np.sort(weights)[::-1]
    tail = np.cumsum(w[::-1])[::-1]  # tail[k] = sum of w[k:], summed from the smallest
    for k in range(n - 1):
        if (n - k) / tail[k] * w[k] < 1.0:
            return k
    return n - 1


def optimal_resample(rng: np.random.Generator, log_w: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Choose at most ``n`` distinct indices; returns (indices, new log-weights).

    The new weights satisfy ``E[sum(exp(new)) / len(new)] = sum(exp(log_w)) / len(log_w)``.
    Indices whose weight underflows to 0 beside the largest (more than ~745 nats below it) are
    dropped, a relative change of the total below float precision.
    """
    m = len(log_w)
    w = normalise(log_w)
    positive = np.flatnonzero(w > 0)
    if len(positive) <= n:
        return positive, log_w[positive] + (math.log(len(positive) / m) if len(positive) else 0.0)
    order = positive[np.argsort(-w[positive], kind="stable")]
    whole = n_kept_whole(w, n)
    keep, rest = np.sort(order[:whole]), np.sort(order[whole:])
    k = n - whole
    picked = rest[systematic(rng, w[rest] / w[rest].sum(), k)]
    scale = math.log(n / m)
    log_rest = logsumexp(log_w[rest]) - math.log(k)
    indices = np.concatenate([keep, picked])
    new = np.concatenate([log_w[keep] + scale, np.full(k, log_rest + scale)])
    return indices, new


@dataclass
class Steer:
    """`smc_steer`'s strategy: expand each unfinished particle into ``n_beam`` copies, keep
    ``n`` of the stepped pool with `optimal_resample`."""

    n: int
    n_beam: int

    def expand(self, particles, rng):
        pool: list[Model] = []
        index: list[int] = []
        for j, p in enumerate(particles):
            copies = 1 if p.finished else self.n_beam
            pool.extend([p] + [p.clone() for _ in range(copies - 1)])
            index.extend([j] * copies)
        for p in pool:
            if not p.finished:
                p.log_weight -= math.log(self.n_beam)
            p.log_weight += math.log(len(pool) / len(particles))
        reseed(pool, rng)
        return pool, index

    def observe(self, stepped, step):
        pass

    def select(self, stepped, log_w, ess, rng):
        indices, new_log_w = optimal_resample(rng, log_w, self.n)
        kept = [stepped[i] for i in indices]
        for p, lw in zip(kept, new_log_w, strict=True):
            p.log_weight = float(lw)
        return kept, indices


async def smc_steer_async(
    model: Model,
    n_particles: int,
    n_beam: int = 3,
    *,
    seed: int | None = None,
    max_steps: int = 1000,
    time_limit: float | None = None,
    record: bool = False,
    progress: bool = False,
) -> Result:
    """SMC-steer from inside an event loop. See `smc_steer`."""
    validate_model(model)
    validate_settings(n_particles, 0.0, max_steps, time_limit)
    if not isinstance(n_beam, (int, np.integer)) or n_beam < 1:
        raise ValueError(f"n_beam must be an integer >= 1, got {n_beam!r}")
    trace = Trace("smc_steer", n_particles, {"n_beam": n_beam}) if record else None
    return await run_loop(model, n_particles, Steer(n_particles, n_beam), algorithm="smc_steer", seed=seed,
                          max_steps=max_steps, time_limit=time_limit, trace=trace, progress=progress)


def smc_steer(
    model: Model,
    n_particles: int,
    n_beam: int = 3,
    *,
    seed: int | None = None,
    max_steps: int = 1000,
    time_limit: float | None = None,
    record: bool = False,
    progress: bool = False,
) -> Result:
    """Beam-like SMC: expand each particle ``n_beam`` ways, keep ``n_particles`` without replacement.

    ``seed``, ``max_steps``, ``time_limit``, ``record`` and ``progress`` as for `smc`.
    """
    return run_interruptible(smc_steer_async(model, n_particles, n_beam, seed=seed, max_steps=max_steps,
                                    time_limit=time_limit, record=record, progress=progress))
