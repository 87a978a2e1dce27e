"""`RunSummary`: what one run of a planned program reports back, in-process or from the sandbox.

It is plain JSON-able data (outputs are strings or JSON values), so the sandbox child can send
it over a pipe and the program cache can store it. ``posterior`` lists ``(output, probability)``
best first, over finished particles that survived the program's own ``check``.
"""

from __future__ import annotations

import json
import math
import reprlib
from dataclasses import asdict, dataclass, field
from typing import Any

from selfsteer.smc import Result
from selfsteer.smc.scaling import ScalingOptions, failed_step_fraction, vote
from selfsteer.smc.scaling.trust_scores import response_text

from .report import ReportError, check_json

MAX_OUTPUT_CHARS = 4000
MAX_POSTERIOR_ENTRIES = 20
MAX_REJECTED_SAMPLES = 3


def clip_output(output: Any) -> Any:
    """A JSON-able, size- and depth-capped form of one program output (a short repr otherwise)."""
    try:
        text = json.dumps(output)
        if len(text) <= MAX_OUTPUT_CHARS:
            check_json(json.loads(text), "the output")
            return output
    except (ReportError, TypeError, ValueError, RecursionError):
        pass
    if not isinstance(output, str):
        output = reprlib.repr(output)
    return output[:MAX_OUTPUT_CHARS] + "..." if len(output) > MAX_OUTPUT_CHARS else output


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
    deaths: dict[str, int] = field(default_factory=dict)  # `Result.deaths`: cause -> count, most frequent first
    isolation: list[str] = field(default_factory=list)  # the sandbox layers in force (empty: in-process)
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
        samples = "".join(f"\n  {o!r}" for o in self.rejected)
        rejected = f". Outputs that check() returned False for:{samples}" if samples else ""
        if self.deaths:
            causes = "; ".join(f"{n} x {cause}" for cause, n in list(self.deaths.items())[:3])
            failed = f"; at the end {self.n_check_failed} finished but failed check()" if self.n_check_failed else ""
            return (f"all {self.n_particles} particles died ({causes}){failed}; enforce the constraint during generation "
                    "(masks, condition), raise max_tokens if the budget killed them, and make check() match the task"
                    + rejected)
        if self.n_check_failed:
            return (f"all {self.n_particles} particles died: {self.n_check_failed} finished but failed check() and the "
                    "rest died on a condition; enforce the constraint during generation (masks, condition) and make sure "
                    "check() matches the task" + rejected)
        return (f"all {self.n_particles} particles died before finishing (a condition was always False, a mask "
                "allowed nothing, or max_tokens was too small); relax the constraint or raise max_tokens")


def smc_extras(scaling: ScalingOptions) -> dict[str, Any]:
    """Keyword arguments of `smc` for ``scaling``: its exploration policy as ``reweight``;
    ``trust`` records the run (for the failed-step fraction)."""
    return {"record": scaling.trust, "reweight": scaling.reweight()}


def summarize(result: Result, time_s: float | None = None, scaling: ScalingOptions = ScalingOptions()) -> RunSummary:
    """Reduce an engine `Result` to a `RunSummary`; ``scaling.vote`` names an aggregator to apply and
    ``scaling.trust`` keeps the finished particles' texts (what a trust score needs)."""
    checks = result.check_passed
    posterior = list(result.posterior.items())
    if math.isnan(result.log_ml) or result.log_ml == math.inf or any(not math.isfinite(p) for _, p in posterior):
        raise ValueError("the particles' weights are not finite numbers (a score, twist or observe of inf or NaN); "
                         "every log-weight must be a finite number, or -inf to kill a particle")
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
        posterior=[(clip_output(o), float(p)) for o, p in posterior[:MAX_POSTERIOR_ENTRIES]],
        time_s=float(result.timings.get("total_s", 0.0) if time_s is None else time_s),
        responses=[clip_output(response_text(p)) for p in alive] if scaling.trust else [],
        failed_step_fraction=fsf,
        vote=vote(result, scaling.vote).to_dict() if scaling.vote else None,
        deaths={clip_output(c): n for c, n in list(result.deaths.items())[:MAX_POSTERIOR_ENTRIES]},
        rejected=rejected,
    )
