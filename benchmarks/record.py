"""`RunRecord`: what one timed run of one system on one task measured, the stopwatch that times it,
and `device_timed` for work queued on a GPU."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass
class RunRecord:
    """One timed run.

    ``wall_s`` and ``cpu_s`` (process CPU time, all threads) cover the run only, not the system's
    one-off setup. ``n_tokens`` counts generated tokens (EOS excluded) over the final sequences;
    ``n_valid`` counts final sequences that pass the shared checker and that the system did not
    discard (weight zero). ``n_forward`` counts forward calls of the shared model (every system's
    alike); ``wall_s / n_forward`` separates a system's cost per model call from how many calls its
    outputs took. ``error`` is set, and the numbers are zero, when the system failed.
    """

    system: str
    task: str
    n_particles: int
    max_tokens: int
    wall_s: float = 0.0
    cpu_s: float = 0.0
    n_tokens: int = 0
    n_valid: int = 0
    n_forward: int = 0
    outputs: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    repeat: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def tokens_per_s(self) -> float:
        return self.n_tokens / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def s_per_forward(self) -> float | None:
        return self.wall_s / self.n_forward if self.n_forward else None

    @property
    def valid_share(self) -> float:
        return self.n_valid / self.n_particles if self.n_particles else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["tokens_per_s"] = self.tokens_per_s
        d["valid_share"] = self.valid_share
        d["s_per_forward"] = self.s_per_forward
        return d


class Stopwatch:
    """``with Stopwatch() as sw: ...`` then ``sw.wall_s`` and ``sw.cpu_s``."""

    def __enter__(self) -> Stopwatch:
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self.wall_s = time.perf_counter() - self._wall
        self.cpu_s = time.process_time() - self._cpu


def device_timed(fn: Callable[[], T], device) -> tuple[T, float]:
    """``fn()`` and the wall seconds it took, the device's work included: on CUDA the device is
    synchronised before (earlier queued work is not counted) and after (this work is)."""
    sync = None
    if device.type == "cuda":
        import torch

        sync = torch.cuda.synchronize
        sync(device)
    start = time.perf_counter()
    out = fn()
    if sync is not None:
        sync(device)
    return out, time.perf_counter() - start


def median_record(records: Sequence[RunRecord]) -> dict[str, Any]:
    """Medians over repeats of one (system, task): wall, cpu, tokens/s, forward passes, valid share;
    also the mean wall time (what a run costs on average: a constrained run's length is random)."""
    good = [r for r in records if r.ok]
    first = records[0]
    out: dict[str, Any] = {
        "system": first.system, "task": first.task, "n_particles": first.n_particles,
        "max_tokens": first.max_tokens, "repeats": len(records),
    }
    if not good:
        out["error"] = records[-1].error
        return out
    out.update(
        wall_s=statistics.median(r.wall_s for r in good),
        mean_wall_s=statistics.mean(r.wall_s for r in good),
        cpu_s=statistics.median(r.cpu_s for r in good),
        n_tokens=statistics.median(r.n_tokens for r in good),
        tokens_per_s=statistics.median(r.tokens_per_s for r in good),
        n_valid=statistics.median(r.n_valid for r in good),
        valid_share=statistics.median(r.valid_share for r in good),
        n_forward=statistics.median(r.n_forward for r in good),
        s_per_forward=statistics.median(r.s_per_forward or 0.0 for r in good) or None,
    )
    return out
