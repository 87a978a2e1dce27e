"""`RunSummary`: what one run of a planned program reports back, in-process or from the sandbox.

It is plain JSON-able data (outputs are strings or JSON values), so the sandbox child can send
it over a pipe and the program cache can store it. ``posterior`` lists ``(output, probability)``
best first, over finished particles that survived the program's own ``check``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from selfsteer.smc import Result
from selfsteer.smc.scaling import Exploration, failed_step_fraction
from selfsteer.smc.scaling.trust import response_text

MAX_OUTPUT_CHARS = 4000
MAX_POSTERIOR_ENTRIES = 20
MAX_REJECTED_SAMPLES = 3


def clip_output(output: Any) -> Any:
    """A JSON-able, size-capped form of one program output."""
    try:
        json.dumps(output)
    except (TypeError, ValueError):
        output = repr(output)
    if isinstance(output, str) and len(output) > MAX_OUTPUT_CHARS:
        return output[:MAX_OUTPUT_CHARS] + "..."
    return output


@dataclass
class RunSummary:
    """The outcome of running one program with SMC (see the module docstring)."""

    status: str
    log_ml: float
    n_particles: int
    n_steps: int
    n_finished: int
    n_check_failed: int
    posterior: list[tuple[Any, float]] = field(default_factory=list)
    time_s: float = 0.0
    responses: list[str] = field(default_factory=list)  # finished, live particles' texts (for trust)
    failed_step_fraction: float | None = None  # when the run was recorded
    vote: dict[str, Any] | None = None  # `Vote.to_dict()` when a vote was asked for
    rejected: list[Any] = field(default_factory=list)  # a few distinct finished outputs that failed check()

    @property
    def answer(self) -> Any:
        """The output with the largest posterior probability (None when nothing survived)."""
        return self.posterior[0][0] if self.posterior else None

    @property
    def weight(self) -> float:
        """The posterior probability of `answer` (0 when nothing survived)."""
        return float(self.posterior[0][1]) if self.posterior else 0.0

    @property
    def check_passed(self) -> bool:
        """True when some output survived: every posterior output passed the program's check."""
        return bool(self.posterior)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["log_ml"] = self.log_ml if math.isfinite(self.log_ml) else str(self.log_ml)
        data["posterior"] = [[o, p] for o, p in self.posterior]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSummary:
        data = dict(data)
        data["log_ml"] = float(data["log_ml"])
        data["posterior"] = [(o, float(p)) for o, p in data.get("posterior", [])]
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    def describe_failure(self) -> str | None:
        """Why this run gave no answer, worded as feedback for the planner (None if it gave one)."""
        if self.posterior:
            return None
        if self.status == "step_cap":
            return (f"the run hit the step cap of {self.n_steps} steps before any particle finished; make "
                    "each step do more (a word or a chunk rather than a token) and make sure every particle ends")
        if self.status == "timeout":
            return "the run ran out of time before any particle finished; make each step do more work and end sooner"
        if self.n_check_failed:
            samples = "".join(f"\n  {o!r}" for o in self.rejected)
            return (f"all {self.n_particles} particles died: {self.n_check_failed} finished but failed check() and the "
                    "rest died on a condition; enforce the constraint during generation (masks, condition) and make sure "
                    "check() matches the task" + (f". Outputs that check() returned False for:{samples}" if samples else ""))
        return (f"all {self.n_particles} particles died before finishing (a condition was always False, a mask "
                "allowed nothing, or max_tokens was too small); relax the constraint or raise max_tokens")


def smc_extras(scaling: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments of `smc` for the test-time scaling options in ``scaling``: outcome-based
    exploration (``explore`` > 0, ``explore_b0``); ``trust`` records the run (for the failed-step fraction)."""
    extras: dict[str, Any] = {"record": bool(scaling.get("trust", False))}
    if scaling.get("explore", 0.0) > 0:
        extras["reweight"] = Exploration(scaling["explore"], b0=scaling.get("explore_b0", 0.5))
    return extras


def summarize(result: Result, time_s: float | None = None, vote: str | None = None,
              responses: bool = False) -> RunSummary:
    """Reduce an engine `Result` to a `RunSummary`; ``vote`` names an aggregator to apply and
    ``responses`` keeps the finished particles' texts (what a trust score needs)."""
    checks = result.check_passed
    alive = [p for p in result.particles if p.finished and p.alive]
    rejected: list[Any] = []
    for p, passed in zip(result.particles, checks, strict=True):
        if passed is False and len(rejected) < MAX_REJECTED_SAMPLES and clip_output(p.output) not in rejected:
            rejected.append(clip_output(p.output))
    fsf = failed_step_fraction(result.trace) if result.trace is not None and result.algorithm == "smc" else None
    return RunSummary(
        status=str(result.status),
        log_ml=float(result.log_ml),
        n_particles=result.n_particles,
        n_steps=result.n_steps,
        n_finished=sum(p.finished and p.alive for p in result.particles),
        n_check_failed=sum(c is False for c in checks),
        posterior=[(clip_output(o), float(p)) for o, p in list(result.posterior.items())[:MAX_POSTERIOR_ENTRIES]],
        time_s=float(result.timings.get("total_s", 0.0) if time_s is None else time_s),
        responses=[clip_output(response_text(p)) for p in alive] if responses else [],
        failed_step_fraction=fsf,
        vote=result.vote(vote).to_dict() if vote else None,
        rejected=rejected,
    )
