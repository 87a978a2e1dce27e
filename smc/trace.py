"""Run traces: what the particles did at every step, for the HTML viewer and for debugging.

Every step of the SMC loop yields a `StepRecord` (ESS, parents, the resampling's ancestors); the
run's `Result` keeps the records, and a `Trace` (an observer the engine calls; it does no I/O
itself) stores each record with the particles' state. ``trace.save(path)`` writes JSON.

Schema (version 1)::

    {"version": 1, "algorithm": str, "n_particles": int, "meta": {...},
     "steps": [{"step": int,                     # 1-based step number
                "particles": [{"text": str, "log_weight": float|null, "finished": bool,
                               "alive": bool}],  # after the step, before resampling
                "ess": float,
                "resampled": bool,
                "ancestors": [int] | null,        # parent index of each particle after resampling
                "parents": [int] | null}],        # each particle's index in the previous step's
                                                  # list (null at step 1; absent in older traces)
     "final": {"status": str, "log_ml": float|null, "posterior": [[output, prob], ...]}}

``null`` stands for a ``-inf`` log-weight.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class StepRecord:
    """What one step of the SMC loop did.

    ``step``: 1-based step number. ``ess``: effective sample size of the stepped population's
    weights. ``parents``: each stepped particle's index in the previous step's population (None
    at step 1). ``ancestors``: the indices, into the stepped population, of the particles carried
    to the next step (None when every particle was carried as it is, i.e. no resampling).
    """

    step: int
    ess: float
    parents: tuple[int, ...] | None = None
    ancestors: tuple[int, ...] | None = None

    @property
    def resampled(self) -> bool:
        return self.ancestors is not None


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


class Trace:
    """Records each step of a run. Pass ``record=True`` to `smc` and read ``result.trace``."""

    def __init__(self, algorithm: str, n_particles: int, meta: dict[str, Any] | None = None):
        self.data: dict[str, Any] = {
            "version": 1,
            "algorithm": algorithm,
            "n_particles": n_particles,
            "meta": meta or {},
            "steps": [],
            "final": None,
        }

    def record_step(self, record: StepRecord, particles: list) -> None:
        """Store ``record`` with the state of the ``particles`` it stepped (before resampling)."""
        self.data["steps"].append(
            {
                "step": record.step,
                "particles": [
                    {
                        "text": p.describe(),
                        "log_weight": _finite(p.log_weight),
                        "finished": bool(p.finished),
                        "alive": bool(p.alive),
                    }
                    for p in particles
                ],
                "ess": float(record.ess),
                "resampled": record.resampled,
                "ancestors": None if record.ancestors is None else [int(a) for a in record.ancestors],
                "parents": None if record.parents is None else [int(a) for a in record.parents],
            }
        )

    def record_final(self, status: str, log_ml: float, posterior: dict[Any, float]) -> None:
        self.data["final"] = {
            "status": status,
            "log_ml": _finite(log_ml),
            "posterior": [[k if isinstance(k, (str, int, float)) else repr(k), v] for k, v in posterior.items()],
        }

    def to_json(self) -> str:
        return json.dumps(self.data)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(self.to_json())
        return path

    @classmethod
    def load(cls, path: str | Path) -> Trace:
        data = json.loads(Path(path).read_text())
        if not isinstance(data, dict) or data.get("version") != 1 or "steps" not in data:
            raise ValueError(f"{path} is not a selfsteer trace (version 1); record one with --trace")
        trace = cls(data.get("algorithm", "smc"), data.get("n_particles", 0), data.get("meta"))
        trace.data = data
        return trace
