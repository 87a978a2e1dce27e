"""The runner contract: every system takes the same `Task` and returns a `RunRecord`.

A runner's ``prepare(task, seed)`` does the one-off setup that a user would do once (building
samplers, potentials, masks) and returns the job to time; ``run`` times that job, counts tokens and
the shared model's forward passes, and applies the shared checker (`benchmarks.tasks.is_valid`) to
every output. A failure becomes a record with ``error`` set, never an exception that stops the
benchmark.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..environment import SharedModel
from ..record import RunRecord, Stopwatch
from ..tasks import Task, is_valid


@dataclass
class Outcome:
    """What a job returns: one text per final sequence (None: no output), whether the system kept
    it (False: weight zero or killed), the generated token count and system-specific numbers."""

    texts: list[str | None]
    kept: list[bool]
    n_tokens: int
    extra: dict[str, Any] = field(default_factory=dict)


class Runner(ABC):
    """One system under test, bound to the shared model."""

    name: str = ""

    def __init__(self, shared: SharedModel):
        self.shared = shared

    def supports(self, task: Task) -> str | None:
        """None if this runner can run ``task``, else the reason it does not."""
        return None

    @abstractmethod
    def prepare(self, task: Task, seed: int) -> Callable[[], Outcome]:
        """Untimed setup; returns the job whose run is timed."""

    def run(self, task: Task, seed: int, repeat: int = 0) -> RunRecord:
        record = RunRecord(self.name, task.name, task.n_particles, task.max_tokens, repeat=repeat)
        try:
            job = self.prepare(task, seed)
            forwards = self.shared.forward_calls[0]
            with Stopwatch() as sw:
                outcome = job()
            record.n_forward = self.shared.forward_calls[0] - forwards
        except Exception as e:  # a failing system is reported, not fatal
            record.error = f"{type(e).__name__}: {e}"
            return record
        record.wall_s, record.cpu_s = sw.wall_s, sw.cpu_s
        record.n_tokens = int(outcome.n_tokens)
        record.outputs = ["" if t is None else t for t in outcome.texts]
        record.n_valid = sum(k and is_valid(task, t) for t, k in zip(outcome.texts, outcome.kept, strict=True))
        record.extra = outcome.extra
        return record
