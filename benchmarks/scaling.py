"""The scaling suite: wall time and throughput of the free task (EOS disallowed, so every system
generates exactly the same number of tokens) over particles and over generated length.

- particles: N in ``size.particle_grid`` (1 to 256 at full size) at ``particle_sweep_tokens``;
- length: T in ``size.length_grid`` (16 to 256) at ``length_sweep_particles`` particles.

A system whose run exceeds the time budget sits out the larger points; they are listed under
``skipped`` with the reason.
"""

from __future__ import annotations

from typing import Any

from .harness import Harness
from .sizes import Size
from .tasks import free_task


def particle_tasks(size: Size):
    return [free_task(n, size.particle_sweep_tokens, name="free_particles") for n in size.particle_grid]


def length_tasks(size: Size):
    return [free_task(size.length_sweep_particles, t, name="free_length") for t in size.length_grid]


def run_scaling(harness: Harness, size: Size) -> dict[str, Any]:
    out: dict[str, Any] = {"budget_s": size.budget_s}
    for label, tasks in (("particles", particle_tasks(size)), ("length", length_tasks(size))):
        records, skipped = harness.sweep(tasks, size.budget_s)
        out[label] = {"runs": [r.to_dict() for r in records], "skipped": skipped}
    return out


def count_timed_runs(harness: Harness, size: Size) -> int:
    tasks = particle_tasks(size) + length_tasks(size)
    return sum(1 for t in tasks for r in harness.runners if r.supports(t) is None)
