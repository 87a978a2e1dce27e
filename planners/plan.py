"""`Plan`: what a planner hands back for a task, and the `Planner` protocol.

A plan is an inference program for one task, as Python source plus how to build it:

- ``origin="library"``: a trusted, hand-written program from ``selfsteer.programs``; ``source`` is
  its module's source, ``class_name`` its class, ``params`` the keyword parameters the planner
  chose (built as ``cls(lm, task, **params)``). Library plans run in-process.
- ``origin="lm"``: a program written by a planner LM, untrusted; ``source`` defines exactly one
  `TextModel` subclass built as ``cls(lm, task)`` (``params`` is empty). LM plans are validated
  and run only in the sandbox.

A planner is any object with ``plan(task, *, feedback=None) -> Plan``; ``feedback`` is the error
the previous attempt ran into, for the planner to fix.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

ORIGINS = ("library", "lm")


class NoProgramFits(Exception):
    """A planner found no program for the task; the message says why and what to configure."""


@dataclass
class Plan:
    """An inference program for one task (see the module docstring)."""

    source: str
    class_name: str
    params: dict[str, Any] = field(default_factory=dict)
    origin: str = "lm"
    program_name: str | None = None
    prompt: list[dict] | None = None
    completion: str | None = None
    interpretation: str | None = None

    def interpreted_as(self) -> str:
        """How the planner read the task: ``program(params)`` (a composed program lists its constraints)."""
        if self.interpretation:
            return self.interpretation
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{self.program_name or self.class_name}({args})"

    def __post_init__(self) -> None:
        if self.origin not in ORIGINS:
            raise ValueError(f"Plan.origin must be one of {ORIGINS}, got {self.origin!r}")
        if not isinstance(self.params, dict):
            raise TypeError(f"Plan.params must be a dict of keyword parameters, got {type(self.params).__name__}")

    @property
    def trusted(self) -> bool:
        """Library programs are trusted (run in-process); LM-written ones are not."""
        return self.origin == "library"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in names})


@runtime_checkable
class Planner(Protocol):
    """Anything that writes or picks a program for a task.

    ``plan`` raises `NoProgramFits` when it has nothing for the task, and `PlannerError`
    (``selfsteer.planners.errors``) when the planner LM could not be reached.
    """

    def plan(self, task: str, *, feedback: str | None = None) -> Plan: ...


def planner_name(planner: Planner) -> str:
    """A stable name for ``planner`` (its ``name`` attribute, else its class name), used in cache keys."""
    return str(getattr(planner, "name", None) or type(planner).__name__)
