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
    INTERRUPTED = "interrupted"  # cancelled (Ctrl-C); unfinished particles are left out of the posterior


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
    deaths: dict[str, int] = field(default_factory=dict)
    """How many particles died of each cause during the run (budget, condition with its source
    line, zero probability such as an empty mask, check), most frequent first; see `Model.death`."""

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
        """Status line, the ``top`` most probable outputs, and the causes of death."""
        lines = [
            f"status: {self.status}   steps: {self.n_steps}   particles: {self.n_particles}   "
            f"resamples: {self.n_resamples}   log_ml: {self.log_ml:.3f}   "
            f"time: {self.timings.get('total_s', 0.0):.2f}s"
        ]
        if not self.posterior:
            unfinished = sum(not p.finished for p in self.particles)
            lines.append("no finished particle survived" + (f" ({unfinished} still running when the run stopped)"
                                                             if unfinished else ""))
        for out, prob in list(self.posterior.items())[:top]:
            lines.append(f"{prob:6.3f}  {out!r}")
        if self.deaths:
            lines.append(f"deaths during the run: {sum(self.deaths.values())}")
            lines += [f"  {n:4d}  {cause}" for n, cause in ((n, c) for c, n in list(self.deaths.items())[:top])]
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
            "records": [
                {"step": r.step, "ess": clean(r.ess), "parents": r.parents, "ancestors": r.ancestors}
                for r in self.records
            ],
            "timings": self.timings,
            "deaths": self.deaths,
            "particles": [
                {
                    "output": p.output if _jsonable(p.output) else repr(p.output),
                    "log_weight": clean(float(lw)),
                    "weight": float(w),
                    "finished": p.completed,
                    "died": p.death if p.death is not None or p.alive else "unknown",
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
        """The result as JSON (outputs that JSON cannot hold are written as their repr).

        A particle's ``finished`` is true only if it finished alive; ``died`` holds a dead one's cause.
        """
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, text: str) -> Result:
        """A `Result` read back from `to_json` (the particles are `RecordedParticle` objects that hold
        the output, weight, death and check of each; no trace)."""
        data = json.loads(text)
        try:
            particles = [RecordedParticle.from_dict(p) for p in data["particles"]]
            return cls(
                particles=particles,
                log_weights=np.array([p.log_weight for p in particles], dtype=np.float64),
                log_ml=float(data["log_ml"]),
                status=Status(data["status"]),
                n_steps=int(data["n_steps"]),
                records=[record_from_dict(r) for r in data.get("records", [])],
                timings=dict(data.get("timings", {})),
                algorithm=data.get("algorithm", "smc"),
                seed=data.get("seed"),
                deaths=dict(data.get("deaths", {})),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"not a selfsteer result in JSON ({type(e).__name__}: {e}); write one with result.to_json()") from None


class RecordedParticle(Model):
    """A particle read back from JSON by `Result.from_json`: output, weight, death and check only."""

    async def step(self) -> None:
        raise RuntimeError("a RecordedParticle (read from JSON) cannot be run")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RecordedParticle:
        p = cls()
        p.output = data["output"]
        p.log_weight = float(data["log_weight"])
        p.death = data.get("died")
        p.finished = bool(data["finished"]) or p.death is not None
        p._check_passed = data.get("check_passed")
        return p


def _jsonable(x: Any) -> bool:
    try:
        json.dumps(x)
        return True
    except (TypeError, ValueError):
        return False


def record_from_dict(data: dict[str, Any]) -> StepRecord:
    """A `StepRecord` from its `Result.to_dict` form."""
    def indices(x: Any) -> tuple[int, ...] | None:
        return None if x is None else tuple(int(i) for i in x)

    return StepRecord(int(data["step"]), float(data["ess"]), indices(data.get("parents")), indices(data.get("ancestors")))
