"""`Result`: what an inference run returns."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import Any

import numpy as np

from .model import Model
from .trace import StepRecord, Trace
from .weights import normalise


class Status(StrEnum):
    """How a run ended."""

    COMPLETED = "completed"  # every particle finished (some may be dead)
    ALL_DEAD = "all_dead"  # every particle has weight -inf: no output survives
    STEP_CAP = "step_cap"  # max_steps reached; unfinished particles are left out of the posterior
    TIMEOUT = "timeout"  # time_limit reached; unfinished particles are left out of the posterior


def output_key(output: Any) -> Any:
    """A hashable key for merging equal outputs (unhashable outputs are keyed by their JSON/repr)."""
    try:
        hash(output)
        return output
    except TypeError:
        try:
            return json.dumps(output, sort_keys=True, default=repr)
        except (TypeError, ValueError):
            return repr(output)


@dataclass
class Result:
    """Particles, weights and diagnostics of one run.

    ``log_ml`` is the log of an unbiased estimate of the normalising constant Z of the program's
    target (``E[exp(log_ml)] = Z``); under ``STEP_CAP`` or ``TIMEOUT`` it includes unfinished
    particles and estimates the constant of an intermediate target instead. ``weights`` are the
    normalised final weights; ``posterior`` maps each distinct finished output to its total
    normalised weight. ``records`` holds what every step of the loop did (ESS, parents,
    resampling ancestors). Answers, votes and trust scores of a result live in
    `selfsteer.smc.scaling` (``vote(result)``, ``trust(result)``).
    """

    particles: list[Model]
    log_weights: np.ndarray
    log_ml: float
    status: Status
    n_steps: int
    records: list[StepRecord] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    trace: Trace | None = None
    algorithm: str = "smc"
    seed: int | None = None

    @property
    def n_particles(self) -> int:
        return len(self.particles)

    @property
    def ess_history(self) -> list[float]:
        """The ESS after every step (before any resampling)."""
        return [r.ess for r in self.records]

    @property
    def n_resamples(self) -> int:
        """How many steps resampled (SMC-steer selects its population at every step)."""
        return sum(r.resampled for r in self.records)

    @property
    def weights(self) -> np.ndarray:
        """Normalised weights of all particles (dead ones 0)."""
        return normalise(self.log_weights)

    @property
    def outputs(self) -> list[Any]:
        return [p.output for p in self.particles]

    @cached_property
    def posterior(self) -> dict[Any, float]:
        """``{output: probability}`` over finished, live particles, equal outputs merged, best first."""
        keep = np.array([p.finished and p.alive for p in self.particles], dtype=bool)
        w = normalise(np.where(keep, self.log_weights, -np.inf))
        merged: dict[Any, float] = {}
        for p, wi, k in zip(self.particles, w, keep, strict=True):
            if k:
                key = output_key(p.output)
                merged[key] = merged.get(key, 0.0) + float(wi)
        return dict(sorted(merged.items(), key=lambda kv: -kv[1]))

    @property
    def best(self) -> Any:
        """The output with the largest posterior probability (None if nothing survived)."""
        return next(iter(self.posterior), None)

    def sample(self, rng: np.random.Generator | int | None = None) -> Any:
        """One draw from the posterior (None if nothing survived)."""
        if not self.posterior:
            return None
        rng = np.random.default_rng(rng)
        keys = list(self.posterior)
        probs = np.array(list(self.posterior.values()))
        return keys[int(rng.choice(len(keys), p=probs / probs.sum()))]

    @property
    def check_passed(self) -> list[bool | None]:
        """Per particle: did ``check`` accept its output (None if unfinished or died before)."""
        return [p._check_passed for p in self.particles]

    def summary(self, top: int = 5) -> str:
        lines = [
            f"status: {self.status}   steps: {self.n_steps}   particles: {self.n_particles}   "
            f"resamples: {self.n_resamples}   log_ml: {self.log_ml:.3f}   "
            f"time: {self.timings.get('total_s', 0.0):.2f}s"
        ]
        if not self.posterior:
            lines.append("no finished particle survived")
        for out, prob in list(self.posterior.items())[:top]:
            lines.append(f"{prob:6.3f}  {out!r}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        def clean(x: float) -> float | str:
            return x if math.isfinite(x) else str(x)

        return {
            "algorithm": self.algorithm,
            "status": str(self.status),
            "seed": self.seed,
            "n_particles": self.n_particles,
            "n_steps": self.n_steps,
            "n_resamples": self.n_resamples,
            "log_ml": clean(self.log_ml),
            "ess_history": [clean(e) for e in self.ess_history],
            "timings": self.timings,
            "particles": [
                {
                    "output": p.output if _jsonable(p.output) else repr(p.output),
                    "log_weight": clean(float(lw)),
                    "weight": float(w),
                    "finished": p.finished,
                    "check_passed": p._check_passed,
                }
                for p, lw, w in zip(self.particles, self.log_weights, self.weights, strict=True)
            ],
            "posterior": [
                {"output": k if _jsonable(k) else repr(k), "probability": v}
                for k, v in self.posterior.items()
            ],
        }

    def to_json(self, indent: int | None = 2) -> str:
        """The result as JSON (outputs that JSON cannot hold are written as their repr)."""
        return json.dumps(self.to_dict(), indent=indent)


def _jsonable(x: Any) -> bool:
    try:
        json.dumps(x)
        return True
    except (TypeError, ValueError):
        return False
