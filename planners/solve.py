"""`solve` and `plan`: from a plain-language task to a verified answer.

``solve(task)`` reuses a cached working program for the task when there is one (unless
``reuse=False``), else asks the planner for a program, runs it (library programs in-process,
planner-written ones validated and sandboxed) and keeps the answer if it passed the program's
``check``. A failure becomes feedback for the next attempt, up to ``attempts`` in all. Every
attempt is written to the program cache. The `SolveResult` says which attempt produced the
program and whether ``check`` passed.
"""

from __future__ import annotations

import asyncio
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from selfsteer.smc.inference import run_sync
from selfsteer.smc.scaling import AGGREGATORS, trust_of_texts

from .cache import AttemptRecord, ProgramCache
from .errors import PlannerError
from .execute import AttemptFailed, RunSettings, run_plan
from .load import load_planner
from .outcome import RunSummary
from .plan import NoProgramFits, Plan, Planner, planner_name
from .sandbox import Limits
from .validate import ValidationError, validate_program

Progress = Callable[[str, int, str], None]  # (stage, attempt, detail)


@dataclass
class Attempt:
    """One attempt: the plan it got (if any), its error (if any) and its run summary (if it ran)."""

    number: int
    plan: Plan | None = None
    error: str | None = None
    error_kind: str | None = None
    summary: RunSummary | None = None
    seconds: float = 0.0
    from_cache: bool = False


@dataclass
class SolveResult:
    """What `solve` found: the answer, its posterior weight and the outcome of ``check``.

    ``attempt`` is the number of the attempt whose program produced the answer: 1, 2, ... for the
    planner's attempts, 0 for a program reused from the program cache (``from_cache``), None when
    no attempt succeeded.
    """

    task: str
    planner: str
    answer: Any = None
    weight: float = 0.0
    check_passed: bool = False
    attempt: int | None = None
    from_cache: bool = False
    plan: Plan | None = None
    summary: RunSummary | None = None
    attempts: list[Attempt] = field(default_factory=list)
    seconds: float = 0.0
    vote: dict[str, Any] | None = None  # `Vote.to_dict()` when ``vote=`` was given
    trust: dict[str, Any] | None = None  # `TrustReport.to_dict()` when ``trust=True``

    @property
    def error(self) -> str | None:
        """The last attempt's error when no attempt succeeded."""
        if self.check_passed or not self.attempts:
            return None
        return self.attempts[-1].error

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task, "planner": self.planner, "answer": self.answer, "weight": self.weight,
            "check_passed": self.check_passed, "attempt": self.attempt, "from_cache": self.from_cache,
            "seconds": self.seconds, "error": self.error,
            "program": self.plan.program_name or self.plan.class_name if self.plan else None,
            "interpreted_as": self.plan.interpreted_as() if self.plan else None,
            "attempts": [{"number": a.number, "error_kind": a.error_kind, "error": a.error, "seconds": a.seconds,
                          "from_cache": a.from_cache} for a in self.attempts],
            "posterior": self.summary.to_dict()["posterior"] if self.summary else [],
            "vote": self.vote, "trust": self.trust,
        }


def _quiet(stage: str, attempt: int, detail: str) -> None:
    pass


def _cache_of(cache: ProgramCache | str | bool | None) -> ProgramCache | None:
    if cache is False:
        return None
    if cache is None or cache is True:
        return ProgramCache()
    return cache if isinstance(cache, ProgramCache) else ProgramCache(cache)


async def _plan_once(planner: Planner, task: str, feedback: str | None) -> Plan:
    try:
        return await asyncio.to_thread(planner.plan, task, feedback=feedback)
    except NoProgramFits as e:
        raise AttemptFailed("no_program", str(e)) from e
    except PlannerError as e:
        raise AttemptFailed("planner" if e.retryable else "planner_fatal", str(e)) from e


async def solve_async(
    task: str,
    *,
    planner: Planner | str | None = None,
    n_particles: int = 8,
    follower: str | None = None,
    lm=None,
    attempts: int = 3,
    seed: int | None = 0,
    limits: Limits | None = None,
    cache: ProgramCache | str | bool | None = None,
    reuse: bool = True,
    progress: Progress | None = None,
    explore: float = 0.0,
    explore_b0: float = 0.5,
    vote: str | None = None,
    trust: bool = False,
) -> SolveResult:
    """`solve` from inside an event loop; see `solve`."""
    if not isinstance(task, str) or not task.strip():
        raise ValueError("the task must be non-empty text, e.g. 'Write a sentence without the letter e.'")
    if attempts < 1:
        raise ValueError(f"attempts must be >= 1, got {attempts}")
    planner = load_planner(planner)
    name, store, say = planner_name(planner), _cache_of(cache), progress or _quiet
    if explore < 0:
        raise ValueError(f"explore must be >= 0 (0 turns exploration off), got {explore}")
    if vote is not None and vote not in AGGREGATORS:
        raise ValueError(f"unknown vote {vote!r}; choose one of {', '.join(AGGREGATORS)}")
    settings = RunSettings(follower=follower, n_particles=n_particles, seed=seed, limits=limits or Limits(), lm=lm,
                           explore=explore, explore_b0=explore_b0, vote=vote, trust=trust)
    result = SolveResult(task=task, planner=name)
    started = time.monotonic()

    async def attempt_with(number: int, get_plan, from_cache: bool = False) -> Attempt:
        attempt, t0 = Attempt(number, from_cache=from_cache), time.monotonic()
        try:
            attempt.plan = await get_plan()
            where = "in-process" if attempt.plan.trusted else "sandboxed"
            say("run", number, f"running {attempt.plan.program_name or attempt.plan.class_name or 'the program'} "
                f"({where}, {n_particles} particles)")
            attempt.summary = await run_plan(attempt.plan, task, settings)
        except AttemptFailed as e:
            attempt.error, attempt.error_kind, attempt.summary = str(e), e.kind, e.summary
            say("error", number, f"{e.kind}: {str(e).splitlines()[0]}")
        attempt.seconds = time.monotonic() - t0
        result.attempts.append(attempt)
        if store is not None:
            record = AttemptRecord(
                task=task, planner=name, attempt=number, plan=attempt.plan.to_dict() if attempt.plan else None,
                error=attempt.error, error_kind=attempt.error_kind,
                summary=attempt.summary.to_dict() if attempt.summary else None, passed=attempt.error is None)
            try:
                store.record(record)
            except OSError as e:  # a full or read-only disk costs the record, not the answer
                warnings.warn(f"could not write to the program cache at {store.root}: {e}", stacklevel=2)
        return attempt

    async def cached_plan() -> Plan:
        return cached.to_plan()

    cached = store.latest_working(task, name) if (store is not None and reuse) else None
    tried: list[Attempt] = []
    if cached is not None:  # attempt 0: the cached program (it uses up none of the planner's attempts)
        say("cache", 0, "reusing the cached program")
        tried.append(await attempt_with(0, cached_plan, from_cache=True))
    feedback: str | None = None
    for number in range(1, attempts + 1):
        if tried and (tried[-1].error is None or tried[-1].error_kind in ("no_program", "planner_fatal")):
            break  # solved, or asking again cannot help
        if tried and tried[-1].number > 0 and tried[-1].error_kind != "planner":
            feedback = tried[-1].error  # the program's error; an unreachable planner teaches it nothing
        say("plan", number, f"asking {name} for a program")
        tried.append(await attempt_with(number, lambda fb=feedback: _plan_once(planner, task, fb)))
    final = tried[-1]
    if final.error is None:
        s = final.summary
        result.answer, result.weight, result.check_passed = s.answer, s.weight, s.check_passed
        result.attempt, result.from_cache, result.plan, result.summary = final.number, final.from_cache, final.plan, s
        result.vote = s.vote
        if trust:
            result.trust = (await asyncio.to_thread(trust_of_texts, s.responses, s.failed_step_fraction)).to_dict()
        say("done", final.number, "check passed")
    result.seconds = time.monotonic() - started
    return result


def solve(task: str, **kwargs: Any) -> SolveResult:
    """Plan, run and verify ``task``; returns a `SolveResult` (see the module docstring).

    Keyword arguments: ``planner`` (a `Planner` or a name for `load_planner`; default from the
    environment, else the offline library planner), ``n_particles`` (8), ``follower`` (a
    `load_lm` name; default the bundled SmolLM2-135M-Instruct), ``lm`` (an already loaded
    follower for in-process runs), ``attempts`` (3), ``seed`` (0), ``limits`` (`Limits` of the
    sandbox and the run), ``cache`` (a `ProgramCache`, a directory, or False for none),
    ``reuse`` (True: reuse a cached working program), ``progress`` (a callback
    ``(stage, attempt, detail)``); test-time scaling: ``explore`` (outcome-based exploration
    weight, 0 = off) and ``explore_b0``, ``vote`` (an aggregator: "majority", "confidence",
    "max_confidence", "likelihood"), ``trust`` (True: semantic isotropy of the responses and the
    failed-step fraction).
    """
    return run_sync(solve_async(task, **kwargs))


def plan(task: str, *, planner: Planner | str | None = None, attempts: int = 3) -> Plan:
    """A program for ``task`` that passes validation (planner-written programs are retried with
    the validation error as feedback); nothing is run. Raises `NoProgramFits`, `PlannerError` or
    `ValidationError` (after ``attempts`` rejected programs)."""
    planner = load_planner(planner)
    feedback = None
    for _ in range(attempts):
        result = planner.plan(task, feedback=feedback)
        if result.trusted:
            return result
        try:
            checked = validate_program(result.source)
        except ValidationError as e:
            feedback, error = str(e), e
            continue
        result.class_name = checked.class_name
        return result
    raise error
