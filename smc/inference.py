"""Sequential Monte Carlo over `Model` programs: the one loop and its ESS-triggered strategy.

`run_loop` is the skeleton every algorithm shares: start the particles, then per step let a
`Strategy` ``expand`` the population, step it, ``check`` what finished, and let the strategy
``select`` the population carried on; each step yields a `StepRecord` (ESS, parents, ancestors)
that feeds the `Result` and the `Trace`. `smc` uses `ESSResampling`; `smc_steer` (in `steer`)
expands every particle into a beam and selects without replacement.

``smc(model, n_particles)`` copies ``model`` into ``n_particles`` particles and repeats:

1. untwist and ``step()`` every unfinished particle concurrently (their LM calls batch together);
2. apply ``check`` to particles that just finished;
3. if ``ESS < ess_threshold * n_particles``, resample: draw ancestors with the chosen scheme and
   give every child the average weight ``logmeanexp(log_w)``, which keeps the evidence estimate
   unbiased;

until every particle has finished, all are dead, ``max_steps`` steps have run or ``time_limit``
seconds have passed, or Ctrl-C interrupts `smc` / `smc_steer`: that run returns the particles so
far with status ``interrupted`` instead of raising. Cancelling the task of `smc_async` follows
asyncio's contract and raises `asyncio.CancelledError` (so ``asyncio.wait_for`` and servers that
cancel a request's run work as they expect). ``ess_threshold=0`` never resamples (importance sampling); ``1`` resamples
at every step where the weights are not all equal.

An optional ``reweight`` policy (e.g. `selfsteer.smc.scaling.Exploration`) changes which
particles resampling copies, never when it happens: after every step, ``reweight(particles,
step)`` returns one finite log-potential per particle; if step 3 resamples, the potentials are
added to the log-weights like a ``twist`` just before, and removed from the children afterwards
(before a particle's next step, or at the next step's end for finished ones, and at the end of
the run). Children thus carry ``logmeanexp(log_w + log_g) - log_g(ancestor)``, so the final
target and the unbiasedness of ``log_ml`` are unchanged, though its variance can grow. A policy
returning zeros leaves the run bit-identical to a run without it, except when a program twists a
particle in the step that finishes it: a policy removes that twist before resampling, a run
without one keeps it until the end of the run (both are properly weighted).

``check`` applies to every finished particle, including those that finish in ``start()``.

The returned `Result` holds ``log_ml = logmeanexp(final log-weights)``, the log of an unbiased
estimate of the target's normalising constant when every particle finished (status completed or
all_dead). A run cut by ``max_steps`` or ``time_limit`` averages unfinished particles' weights
too, so its ``log_ml`` estimates the normalising constant of an intermediate target. While a
run lasts, Python's cycle collector skips the objects that existed before it (see `heap`): the
model's and libraries' objects are never scanned by the collections the run's allocations trigger.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import math
import os
import secrets
import time
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from tqdm.auto import tqdm

from .distributions import ZeroProbability
from .lm.transformers.heap import collect_new_objects_only
from .model import Model, ParticleDied
from .resampling import get_resampler
from .result import Result, Status
from .trace import StepRecord, Trace
from .weights import ess, logmeanexp, normalise

Reweight = Callable[[Sequence[Model], int], Sequence[float]]


class ProgramError(RuntimeError):
    """A program's own code raised an exception (not a zero-probability event)."""


def validate_model(model: Model) -> None:
    """Reject a model instance the engine cannot run, with a message that says how to fix it.

    (Planner-written source code is checked by `selfsteer.planners.validate_program`.)"""
    if not isinstance(model, Model):
        raise TypeError(f"smc needs an instance of a Model subclass, got {type(model).__name__}")
    step = getattr(type(model), "step", None)
    if step is None or step is Model.step:
        raise TypeError(f"{type(model).__name__} has no step(); define `async def step(self): ...`")
    if not inspect.iscoroutinefunction(step):
        raise TypeError(
            f"{type(model).__name__}.step must be a coroutine: write `async def step(self)`, not `def step(self)`"
        )
    if not hasattr(model, "log_weight"):
        raise TypeError(f"{type(model).__name__}.__init__ must call super().__init__()")


def validate_settings(n_particles: int, ess_threshold: float, max_steps: int, time_limit: float | None) -> None:
    if not isinstance(n_particles, (int, np.integer)) or n_particles < 1:
        raise ValueError(f"n_particles must be an integer >= 1, got {n_particles!r}")
    if not 0.0 <= ess_threshold <= 1.0:
        raise ValueError(f"ess_threshold must lie in [0, 1], got {ess_threshold!r}")
    if max_steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps!r}")
    if time_limit is not None and time_limit <= 0:
        raise ValueError(f"time_limit must be positive seconds or None, got {time_limit!r}")


def draw_seed() -> int:
    """A fresh random seed, recorded in `Result.seed` so that a run without one can be repeated."""
    return secrets.randbelow(2**63)


def reseed(particles: Sequence[Model], rng: np.random.Generator) -> None:
    """Give every particle its own random stream drawn from the run's generator."""
    for p in particles:
        p.rng = np.random.default_rng(int(rng.integers(2**63)))


async def start_particles(model: Model, n: int, rng: np.random.Generator) -> list[Model]:
    """``n`` seeded copies of ``model`` after ``start()``; those it finished are checked."""
    particles = [model.clone() for _ in range(n)]
    reseed(particles, rng)
    await asyncio.gather(*(_guarded(p, p.start) for p in particles))
    apply_checks(particles)
    return particles


async def _guarded(p: Model, fn) -> None:
    """Run one particle's coroutine; zero-probability events kill the particle, bugs raise."""
    try:
        await fn()
    except ParticleDied:
        pass
    except ZeroProbability as e:
        p.kill(f"zero probability: {e}")
    except Exception as e:
        where = program_line(type(p), e)
        raise ProgramError(
            f"{type(p).__name__}.{fn.__name__}() raised {type(e).__name__}: {e}" + (f" ({where})" if where else "")
        ) from e


def program_line(cls: type, error: BaseException) -> str:
    """``file:line: code`` of the innermost traceback frame in the program's own source (its
    classes outside this package), or "" when none is found."""
    files = set()
    for c in cls.__mro__:
        if not c.__module__.startswith(__package__):
            with contextlib.suppress(TypeError, OSError):
                files.add(inspect.getsourcefile(c))
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename in files]
    if not frames:
        return ""
    f = frames[-1]
    return f"at {os.path.basename(f.filename)}:{f.lineno}: {f.line}"


def apply_checks(particles: Sequence[Model]) -> None:
    """Run ``check`` once on each newly finished particle; a failed check sets weight -inf."""
    for p in particles:
        if p.finished and p._check_passed is None and p.alive:
            try:
                ok = bool(p.check(p.output))
            except Exception as e:
                raise ProgramError(f"{type(p).__name__}.check() raised {type(e).__name__}: {e}") from e
            p._check_passed = ok
            if not ok:
                p.kill(f"check: {type(p).__name__}.check rejected the output")


def record_deaths(particles: Sequence[Model], deaths: Counter[str]) -> None:
    """Count the cause of every particle that died since the last call (for `Result.deaths`)."""
    for p in particles:
        if p.death is not None and not p._death_recorded:
            p._death_recorded = True
            deaths[p.death] += 1


def log_weights(particles: Sequence[Model]) -> np.ndarray:
    """The particles' log-weights; ProgramError if one is NaN or +inf (set other than through the
    primitives, which reject such increments)."""
    log_w = np.array([p.log_weight for p in particles], dtype=np.float64)
    bad = np.flatnonzero(np.isnan(log_w) | (log_w == math.inf))
    if len(bad):
        p = particles[int(bad[0])]
        raise ProgramError(
            f"{type(p).__name__} particle {int(bad[0])} has log-weight {log_w[bad[0]]}; change weights only "
            "through observe/score/condition/twist, with finite or -inf values"
        )
    return log_w


def stop_before_step(n_steps: int, max_steps: int, deadline: float | None) -> Status | None:
    """`Status.STEP_CAP` or `Status.TIMEOUT` when a run must stop before its next step, else None."""
    if n_steps >= max_steps:
        return Status.STEP_CAP
    if deadline is not None and time.monotonic() >= deadline:
        return Status.TIMEOUT
    return None


async def step_particles(particles: Sequence[Model], deadline: float | None) -> bool | None:
    """Step all unfinished particles concurrently; False if the deadline cut the step short, None if
    the run was cancelled (see `run_loop`)."""
    active = [p for p in particles if not p.finished]
    for p in active:
        p.untwist()
    steps = asyncio.gather(*(_guarded(p, p.step) for p in active))
    try:
        if deadline is None:
            await steps
            return True
        await asyncio.wait_for(steps, timeout=max(deadline - time.monotonic(), 0.0))
        return True
    except TimeoutError:
        return False
    except asyncio.CancelledError:
        return None


def consult_reweight(particles: Sequence[Model], reweight: Reweight, step: int) -> np.ndarray:
    """Remove finished particles' last potential and ask the policy for new ones (see the module docstring)."""
    for p in particles:
        if p.finished:
            p.untwist()
    log_g = np.asarray(reweight(particles, step), dtype=np.float64)
    if log_g.shape != (len(particles),) or not np.all(np.isfinite(log_g)):
        raise ValueError("a reweight policy must return one finite log-potential per particle")
    return log_g


def apply_potentials(particles: Sequence[Model], log_g: np.ndarray) -> None:
    for p, g in zip(particles, log_g, strict=True):
        if g != 0.0 and p.alive:
            p.twist(float(g))


def resample(particles: list[Model], rng: np.random.Generator, scheme: str) -> tuple[list[Model], np.ndarray]:
    """Resample to the same size; children are copies carrying the average weight."""
    log_w = np.array([p.log_weight for p in particles])
    ancestors = get_resampler(scheme)(rng, normalise(log_w), len(particles))
    avg = logmeanexp(log_w)
    children = [particles[a].clone() for a in ancestors]
    for c in children:
        c.log_weight = avg
    reseed(children, rng)
    return children, ancestors


def finish_run(
    particles: list[Model], status: Status, records: list[StepRecord], started: float,
    trace: Trace | None, algorithm: str, seed: int | None, deaths: Counter[str] | None = None,
) -> Result:
    deaths = Counter() if deaths is None else deaths
    record_deaths(particles, deaths)
    for p in particles:
        p.untwist()
    log_w = np.array([p.log_weight for p in particles], dtype=np.float64)
    if status == Status.COMPLETED and not np.any(np.isfinite(log_w)):
        status = Status.ALL_DEAD
    total = time.monotonic() - started
    result = Result(
        particles=particles,
        log_weights=log_w,
        log_ml=logmeanexp(log_w),
        status=status,
        n_steps=len(records),
        records=records,
        timings={"total_s": total, "per_step_s": total / max(len(records), 1)},
        trace=trace,
        algorithm=algorithm,
        seed=seed,
        deaths=dict(deaths.most_common()),
    )
    if trace is not None:
        trace.record_final(str(status), result.log_ml, result.posterior, result.deaths)
    return result


class Strategy(Protocol):
    """How the loop grows and selects the population (see the module docstring)."""

    def expand(self, particles: list[Model], rng: np.random.Generator) -> tuple[list[Model], list[int]]:
        """The population to step, and each member's index in ``particles``."""
        ...

    def observe(self, stepped: list[Model], step: int) -> None:
        """See the stepped population after ``check``, before its weights are read."""
        ...

    def select(
        self, stepped: list[Model], log_w: np.ndarray, ess: float, rng: np.random.Generator
    ) -> tuple[list[Model], np.ndarray | None]:
        """The population carried to the next step, and its ancestors (None: carried as it is)."""
        ...


@dataclass
class ESSResampling:
    """`smc`'s strategy: step every particle; resample when ESS < ``threshold * n``."""

    n: int
    threshold: float
    scheme: str
    reweight: Reweight | None = None
    log_g: np.ndarray | None = None

    def expand(self, particles, rng):
        return particles, list(range(len(particles)))

    def observe(self, stepped, step):
        self.log_g = consult_reweight(stepped, self.reweight, step) if self.reweight is not None else None

    def select(self, stepped, log_w, ess, rng):
        if all(p.finished for p in stepped) or ess >= self.threshold * self.n:
            return stepped, None
        if self.log_g is not None:
            apply_potentials(stepped, self.log_g)
        return resample(stepped, rng, self.scheme)


async def run_loop(
    model: Model, n_particles: int, strategy: Strategy, *, algorithm: str, seed: int | None,
    max_steps: int, time_limit: float | None, trace: Trace | None, progress: bool,
) -> Result:
    """The one SMC loop: start, then expand, step, check and select until every particle has
    finished (or a cap, a deadline or the death of all); one `StepRecord` per step."""
    started = time.monotonic()
    deadline = started + time_limit if time_limit is not None else None
    seed = draw_seed() if seed is None else seed
    rng = np.random.default_rng(seed)
    records: list[StepRecord] = []
    deaths: Counter[str] = Counter()
    status = Status.COMPLETED
    with collect_new_objects_only():
        particles = await start_particles(model, n_particles, rng)
        origin: list[int] = list(range(len(particles)))  # each particle's index in the last stepped population
        bar = tqdm(desc=algorithm, unit="step", disable=not progress, leave=False)
        while any(not p.finished for p in particles):
            if (stop := stop_before_step(len(records), max_steps, deadline)) is not None:
                status = stop
                break
            stepped, index = strategy.expand(particles, rng)
            completed = await step_particles(stepped, deadline)
            if completed is None:
                if not RETURN_ON_INTERRUPT.get():
                    raise asyncio.CancelledError
                particles, status = stepped, Status.INTERRUPTED
                break
            apply_checks(stepped)
            record_deaths(stepped, deaths)
            strategy.observe(stepped, len(records) + 1)
            log_w = log_weights(stepped)
            current_ess = ess(log_w)
            if not completed:
                status = Status.TIMEOUT
            elif not np.any(np.isfinite(log_w)):
                status = Status.ALL_DEAD
            particles, ancestors = (stepped, None) if status != Status.COMPLETED else strategy.select(
                stepped, log_w, current_ess, rng
            )
            records.append(StepRecord(
                len(records) + 1, current_ess, tuple(origin[i] for i in index) if records else None,
                None if ancestors is None else tuple(int(a) for a in ancestors),
            ))
            origin = list(records[-1].ancestors or range(len(stepped)))
            if trace is not None:
                trace.record_step(records[-1], stepped)
            bar.update(1)
            bar.set_postfix(active=sum(not p.finished for p in particles), ess=f"{current_ess:.1f}")
            if status != Status.COMPLETED:
                break
    bar.close()
    return finish_run(particles, status, records, started, trace, algorithm, seed, deaths)


async def smc_async(
    model: Model,
    n_particles: int,
    *,
    ess_threshold: float = 0.5,
    resampling: str = "stratified",
    seed: int | None = None,
    max_steps: int = 1000,
    time_limit: float | None = None,
    record: bool = False,
    progress: bool = False,
    reweight: Reweight | None = None,
) -> Result:
    """Run SMC from inside an event loop (Jupyter, async apps). See `smc` for the arguments."""
    validate_model(model)
    validate_settings(n_particles, ess_threshold, max_steps, time_limit)
    get_resampler(resampling)
    trace = Trace("smc", n_particles, {"ess_threshold": ess_threshold, "resampling": resampling}) if record else None
    strategy = ESSResampling(n_particles, ess_threshold, resampling, reweight)
    return await run_loop(model, n_particles, strategy, algorithm="smc", seed=seed, max_steps=max_steps,
                          time_limit=time_limit, trace=trace, progress=progress)


RETURN_ON_INTERRUPT: contextvars.ContextVar[bool] = contextvars.ContextVar("return_on_interrupt", default=False)
"""True inside `smc` / `smc_steer`: a cancelled run (Ctrl-C) returns its particles instead of raising."""


def run_interruptible(coro):
    """`run_sync` for the engines' synchronous entry points: Ctrl-C returns the run so far."""
    token = RETURN_ON_INTERRUPT.set(True)
    try:
        return run_sync(coro)
    finally:
        RETURN_ON_INTERRUPT.reset(token)


def run_sync(coro):
    """Run a coroutine from synchronous code; inside a running loop, name the async twin to await.

    The message names the caller from the coroutine: ``solve_async(...)`` reports ``solve()``.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    coro.close()
    twin = coro.__name__
    raise RuntimeError(
        f"{twin.removesuffix('_async')}() was called inside a running event loop (e.g. Jupyter); "
        f"use `await {twin}(...)` instead"
    )


def smc(
    model: Model,
    n_particles: int,
    *,
    ess_threshold: float = 0.5,
    resampling: str = "stratified",
    seed: int | None = None,
    max_steps: int = 1000,
    time_limit: float | None = None,
    record: bool = False,
    progress: bool = False,
    reweight: Reweight | None = None,
) -> Result:
    """Run SMC on ``model`` with ``n_particles`` particles and return a `Result`.

    Args:
        ess_threshold: resample when ESS < ess_threshold * n_particles (0 = importance sampling).
        resampling: "stratified", "systematic", "residual" or "multinomial".
        seed: fixes the run on a given backend (None: a fresh seed, recorded in ``result.seed``).
        max_steps: step cap; time_limit: wall-clock seconds (None = no limit).
        record: keep a `Trace` in ``result.trace``; progress: show a progress bar.
        reweight: a policy whose potentials steer which particles resampling copies, without
            changing the target (see the module docstring).

    Ctrl-C ends the run with status ``interrupted`` and the
    particles finished so far. Inside a running event loop (Jupyter) use ``await smc_async(...)``.
    """
    return run_interruptible(smc_async(model, n_particles, ess_threshold=ess_threshold, resampling=resampling, seed=seed,
                              max_steps=max_steps, time_limit=time_limit, record=record, progress=progress,
                              reweight=reweight))
