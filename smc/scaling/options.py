"""`ScalingOptions`: the test-time scaling settings of one run, as one typed value.

``solve`` builds it from its keywords, the program runs with it in-process or in the sandbox (it
crosses the process boundary as JSON: `to_json` / `from_json`), and the engine call takes
``record=options.trust`` and ``reweight=options.reweight()``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from numbers import Real
from typing import Any

from .answers import AGGREGATORS
from .explore import Exploration


@dataclass(frozen=True)
class ScalingOptions:
    """Test-time scaling for one run.

    Attributes:
        explore: outcome-based exploration weight (`Exploration`); 0 turns exploration off.
        explore_b0: the UCB offset b0 of the exploration bonus.
        vote: an aggregator of `AGGREGATORS` applied to the finished particles, or None.
        trust: gather what the trust scores need (the run's record and the responses).
    """

    explore: float = 0.0
    explore_b0: float = 0.5
    vote: str | None = None
    trust: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.explore, bool) or not isinstance(self.explore, Real) or not self.explore >= 0:
            raise ValueError(f"explore must be >= 0 (0 turns exploration off), got {self.explore!r}")
        if isinstance(self.explore_b0, bool) or not isinstance(self.explore_b0, Real) or not self.explore_b0 >= 0:
            raise ValueError(f"explore_b0 must be a number >= 0, got {self.explore_b0!r}")
        if self.vote is not None and self.vote not in AGGREGATORS:
            raise ValueError(f"unknown vote {self.vote!r}; choose one of {', '.join(AGGREGATORS)}")
        if not isinstance(self.trust, bool):
            raise ValueError(f"trust must be True or False, got {self.trust!r}")

    def reweight(self) -> Exploration | None:
        """The ``reweight`` policy for `smc`: `Exploration` when ``explore > 0``, else None."""
        return Exploration(self.explore, b0=self.explore_b0) if self.explore > 0 else None

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict; `from_json` reads it back to an equal value."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ScalingOptions:
        """The options in ``data`` (missing keys take their defaults); unknown keys are a ValueError."""
        names = {f.name for f in fields(cls)}
        if not isinstance(data, dict) or set(data) - names:
            extra = sorted(set(data) - names) if isinstance(data, dict) else data
            raise ValueError(f"unknown scaling options {extra!r}; valid ones are {sorted(names)}")
        return cls(**data)
