"""SMC-steer: beam-like SMC with without-replacement ("optimal") resampling.

Each step expands every unfinished particle into ``n_beam`` copies, steps them, and keeps at most
``n_particles`` of the pool: particles with large weight are kept deterministically, the rest are
thinned by systematic resampling without replacement (Fearnhead and Clifford, 2003). Finished
particles are kept, not expanded, so the method behaves like a stochastic beam search.

Weights keep ``mean(exp(log_w))`` an unbiased estimate of the normalising constant at every
step, so ``result.log_ml`` is unbiased as for `smc`.
"""

from __future__ import annotations

import math
import time
from collections import Counter

import numpy as np
from tqdm.auto import tqdm

from .inference import (
    apply_checks,
    draw_seed,
    finish_run,
    record_deaths,
    reseed,
    run_sync,
    start_particles,
    step_particles,
    stop_before_step,
    validate_program,
    validate_settings,
)
from .lm.transformers.heap import collect_new_objects_only
from .model import Model
from .resampling import systematic
from .result import Result, Status
from .trace import Trace
from .weights import ess, logsumexp, normalise


def keep_threshold(weights: np.ndarray, n: int) -> float:
    """The ``c`` with ``sum(min(1, c * w)) = n`` for normalised ``weights`` with more than n positive."""
    w = np.sort(weights)[::-1]
    tail = np.cumsum(w[::-1])[::-1]  # tail[k] = sum of w[k:]
    for k in range(n):
        c = (n - k) / tail[k]
        if c * w[k] < 1.0:
            return c
    raise ValueError("fewer than n positive weights")  # unreachable when the precondition holds


def optimal_resample(rng: np.random.Generator, log_w: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Choose at most ``n`` distinct indices; returns (indices, new log-weights).

    The new weights satisfy ``E[sum(exp(new)) / len(new)] = sum(exp(log_w)) / len(log_w)``.
    """
    m = len(log_w)
    positive = np.flatnonzero(np.isfinite(log_w))
    if len(positive) <= n:
        return positive, log_w[positive] + math.log(len(positive) / m)
    w = normalise(log_w)
    c = keep_threshold(w, n)
    keep = np.flatnonzero(c * w >= 1.0)
    rest = np.flatnonzero((c * w < 1.0) & (w > 0))
    k = n - len(keep)
    picked = rest[systematic(rng, w[rest] / w[rest].sum(), k)]
    scale = math.log(n / m)
    log_rest = logsumexp(log_w[rest]) - math.log(k)
    indices = np.concatenate([keep, picked])
    new = np.concatenate([log_w[keep] + scale, np.full(k, log_rest + scale)])
    return indices, new


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
    validate_program(model)
    validate_settings(n_particles, 0.0, max_steps, time_limit)
    if not isinstance(n_beam, (int, np.integer)) or n_beam < 1:
        raise ValueError(f"n_beam must be an integer >= 1, got {n_beam!r}")
    started = time.monotonic()
    deadline = started + time_limit if time_limit is not None else None
    seed = draw_seed() if seed is None else seed
    rng = np.random.default_rng(seed)
    trace = Trace("smc_steer", n_particles, {"n_beam": n_beam}) if record else None
    with collect_new_objects_only():
        particles = await start_particles(model, n_particles, rng)
        ess_history: list[float] = []
        deaths: Counter[str] = Counter()
        n_steps, status = 0, Status.COMPLETED
        bar = tqdm(desc="SMC-steer", unit="step", disable=not progress, leave=False)
        while any(not p.finished for p in particles):
            if (stop := stop_before_step(n_steps, max_steps, deadline)) is not None:
                status = stop
                break
            m = len(particles)
            pool: list[Model] = []
            for p in particles:
                if p.finished:
                    pool.append(p)
                else:
                    pool.extend([p] + [p.clone() for _ in range(n_beam - 1)])
            for p in pool:
                if not p.finished:
                    p.log_weight -= math.log(n_beam)
                p.log_weight += math.log(len(pool) / m)
            reseed(pool, rng)
            completed = await step_particles(pool, deadline)
            if completed is None:
                particles, status = pool, Status.INTERRUPTED
                break
            n_steps += 1
            apply_checks(pool)
            record_deaths(pool, deaths)
            log_w = np.array([p.log_weight for p in pool])
            ess_history.append(ess(log_w))
            if trace is not None:
                trace.record_step(n_steps, pool, ess_history[-1])
            bar.update(1)
            if not completed:
                particles, status = pool, Status.TIMEOUT
                break
            if not np.any(np.isfinite(log_w)):
                particles, status = pool, Status.ALL_DEAD
                break
            indices, new_log_w = optimal_resample(rng, np.array([p.log_weight for p in pool]), n_particles)
            particles = [pool[i] for i in indices]
            for p, lw in zip(particles, new_log_w, strict=True):
                p.log_weight = float(lw)
            if trace is not None:
                trace.record_resample(list(indices))
    bar.close()
    return finish_run(particles, status, n_steps, ess_history, 0, started, trace, "smc_steer", seed, deaths)


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
    return run_sync(smc_steer_async(model, n_particles, n_beam, seed=seed, max_steps=max_steps,
                                    time_limit=time_limit, record=record, progress=progress))
