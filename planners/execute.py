"""Run one plan: library plans in-process, planner-written plans validated and sandboxed.

``await run_plan(plan, task, settings)`` returns a `RunSummary` or raises `AttemptFailed`, whose
``kind`` says which stage failed (validation, program, memory, recursion, violation, timeout,
crash, load, protocol, no_output, sandbox_unavailable) and whose message, clipped to a few
thousand characters, is feedback for the planner.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field

from selfsteer.smc import LanguageModel, ProgramError, TextModel, load_lm, smc_async
from selfsteer.smc.scaling import ScalingOptions

from .outcome import RunSummary, smc_extras, summarize
from .plan import Plan
from .report import clip
from .sandbox import Limits, SandboxError, SandboxUnavailable, run_sandboxed
from .validate import ValidationError, validate_program


class AttemptFailed(RuntimeError):
    """One attempt failed; ``kind`` names the stage and the message is feedback for the planner."""

    def __init__(self, kind: str, message: str, *, summary: RunSummary | None = None):
        super().__init__(clip(message))
        self.kind = kind
        self.summary = summary


@dataclass
class RunSettings:
    """How a plan is run: the follower, particles, seed, limits and test-time scaling options."""

    follower: str | None = None  # a load_lm name; None = the bundled SmolLM2-135M-Instruct
    n_particles: int = 8
    seed: int | None = 0
    ess_threshold: float = 0.5
    limits: Limits = field(default_factory=Limits)
    lm: LanguageModel | None = None  # a loaded follower for in-process (library) runs
    scaling: ScalingOptions = ScalingOptions()
    allow_weak_sandbox: bool = False  # run planner-written code even where an isolation layer is missing


_FOLLOWERS: dict[str | None, LanguageModel] = {}
# Every model load in worker threads takes this lock: transformers' from_pretrained patches
# torch globally while it builds a model on the meta device, so two loads in two threads at once
# can leave later models stuck on "meta" ("Cannot copy out of meta tensor").
MODEL_LOAD_LOCK = threading.Lock()


def follower_lm(settings: RunSettings) -> LanguageModel:
    """The loaded follower for in-process runs (loaded once per name and process)."""
    if settings.lm is not None:
        return settings.lm
    with MODEL_LOAD_LOCK:
        if settings.follower not in _FOLLOWERS:
            _FOLLOWERS[settings.follower] = load_lm(settings.follower)
        return _FOLLOWERS[settings.follower]


def library_class(plan: Plan) -> type[TextModel]:
    from selfsteer.programs.registry import all_programs

    for cls in all_programs():
        if cls.SPEC.name == plan.program_name or (plan.program_name is None and cls.__name__ == plan.class_name):
            return cls
    raise AttemptFailed("program", f"no library program named {plan.program_name or plan.class_name!r}")


async def run_library_plan(plan: Plan, task: str, settings: RunSettings) -> RunSummary:
    """A trusted library program, run in this process on the shared follower."""
    cls = library_class(plan)
    lm = await asyncio.to_thread(follower_lm, settings) if settings.lm is None else settings.lm
    try:
        params = cls.SPEC.validate(dict(plan.params)) if hasattr(cls, "SPEC") else plan.params
        model = cls(lm, task, **params)
        started = time.monotonic()
        result = await smc_async(model, settings.n_particles, seed=settings.seed, ess_threshold=settings.ess_threshold,
                                 max_steps=settings.limits.max_steps, time_limit=settings.limits.wall_s,
                                 **smc_extras(settings.scaling))
        return summarize(result, time.monotonic() - started, settings.scaling)
    except (ProgramError, ValueError, TypeError) as e:
        raise AttemptFailed("program", f"{type(e).__name__}: {e}") from e


async def run_lm_plan(plan: Plan, task: str, settings: RunSettings) -> RunSummary:
    """An untrusted planner-written program: validated, then run only in the sandbox."""
    try:
        program = validate_program(plan.source)
    except ValidationError as e:
        raise AttemptFailed("validation", str(e)) from e
    try:
        run = await run_sandboxed(program, task, follower=settings.follower, n_particles=settings.n_particles,
                                  seed=settings.seed, ess_threshold=settings.ess_threshold, limits=settings.limits,
                                  scaling=settings.scaling.to_json(), allow_weak_sandbox=settings.allow_weak_sandbox)
    except SandboxUnavailable as e:
        raise AttemptFailed("sandbox_unavailable", str(e)) from e
    except SandboxError as e:
        raise AttemptFailed(e.kind, str(e)) from e
    return run.summary


async def run_plan(plan: Plan, task: str, settings: RunSettings) -> RunSummary:
    """Run ``plan`` on ``task``; raises `AttemptFailed` when it gives no answer."""
    summary = await (run_library_plan if plan.trusted else run_lm_plan)(plan, task, settings)
    failure = summary.describe_failure()
    if failure is not None:
        raise AttemptFailed("no_output", failure, summary=summary)
    return summary
