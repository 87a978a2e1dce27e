"""`SolveEngine`: one follower and one event loop in a background thread, shared by many callers.

Every `solve` submitted to the engine runs as a task on the engine's loop with the same loaded
follower, so library programs of concurrent requests batch their LM calls together (the same
mechanism `selfsteer eval --jobs` uses). Callers await `SolveEngine.solve` from their own event
loop (an HTTP server's) and stay responsive while forwards run. Cancelling the awaiting task
cancels the run on the engine's loop; a request's time limit bounds both the SMC run (its wall
limit) and the whole solve.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from typing import Any

from .cache import ProgramCache
from .execute import RunSettings, follower_lm, library_class
from .plan import Plan, Planner
from .sandbox import Limits
from .solve import Progress, SolveResult, solve_async


class SolveTimeout(TimeoutError):
    """A solve ran past its time limit (the message names the limit)."""


@dataclass(frozen=True)
class FixedPlanner:
    """A planner that always hands back one library program with fixed parameters."""

    plan_: Plan

    @property
    def name(self) -> str:
        return f"program:{self.plan_.program_name}"

    def plan(self, task: str, *, feedback: str | None = None) -> Plan:
        return self.plan_


def named_program_plan(name: str, params: dict[str, Any] | None) -> Plan:
    """A library plan for program ``name`` with ``params``; ValueError names the valid choices."""
    from selfsteer.programs.registry import all_programs

    from .execute import AttemptFailed

    plan = Plan(source="", class_name="", params=dict(params or {}), origin="library", program_name=name)
    try:
        cls = library_class(plan)
    except AttemptFailed:
        names = ", ".join(sorted(c.SPEC.name for c in all_programs()))
        raise ValueError(f"unknown program {name!r}; choose one of: {names}") from None
    cls.SPEC.validate(plan.params)
    return plan


class SolveEngine:
    """Runs `solve_async` calls on one follower in a background event loop (see the module docstring).

    Args: ``planner`` (a `Planner`), ``follower`` (a `load_lm` name) or ``lm`` (a loaded
    follower), and the defaults of every solve: ``n_particles``, ``seed``, ``attempts``,
    ``limits`` and ``cache`` (False: no program cache).
    """

    def __init__(self, *, planner: Planner, follower: str | None = None, lm=None, n_particles: int = 8,
                 seed: int = 0, attempts: int = 3, limits: Limits | None = None,
                 cache: ProgramCache | bool | None = False):
        self.planner, self.follower, self.lm = planner, follower, lm
        self.n_particles, self.seed, self.attempts = n_particles, seed, attempts
        self.limits, self.cache = limits or Limits(), cache
        self.running = 0  # solves in flight
        self.peak = 0  # most solves in flight at once
        self.cancelled = 0  # solves cancelled by their caller (a client that went away)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="selfsteer-engine", daemon=True)

    def start(self) -> SolveEngine:
        """Start the engine's loop and load the follower (once; blocks until loaded)."""
        self._thread.start()
        if self.lm is None:
            self.lm = asyncio.run_coroutine_threadsafe(
                asyncio.to_thread(follower_lm, RunSettings(follower=self.follower)), self._loop).result()
        return self

    def close(self) -> None:
        """Cancel what is still running and stop the loop."""
        if not self._thread.is_alive():
            return

        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(cancel_all(), self._loop).result(timeout=300)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=60)

    async def solve(self, task: str, *, plan: Plan | None = None, n_particles: int | None = None,
                    seed: int | None = None, attempts: int | None = None, time_limit: float | None = None,
                    progress: Progress | None = None) -> SolveResult:
        """Solve ``task`` on the engine (``plan``: run this library plan instead of planning).

        ``progress`` is called on the caller's loop. Raises `SolveTimeout` past ``time_limit``
        seconds for the whole solve (default: the engine's ``limits.wall_s``); cancelling the
        caller cancels the run.
        """
        limit = float(time_limit if time_limit is not None else self.limits.wall_s)
        caller = asyncio.get_running_loop()

        def report(stage: str, attempt: int, detail: str) -> None:
            if progress is not None:
                caller.call_soon_threadsafe(progress, stage, attempt, detail)

        async def run() -> SolveResult:
            self.running += 1
            self.peak = max(self.peak, self.running)
            try:
                return await asyncio.wait_for(solve_async(
                    task, planner=FixedPlanner(plan) if plan is not None else self.planner, lm=self.lm,
                    follower=self.follower, n_particles=n_particles or self.n_particles,
                    seed=self.seed if seed is None else seed, attempts=attempts or self.attempts,
                    limits=self.limits, cache=self.cache, reuse=plan is None, progress=report), timeout=limit)
            except TimeoutError:
                raise SolveTimeout(f"the request ran past its time limit of {limit:g} s") from None
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
            finally:
                self.running -= 1

        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(run(), self._loop))
