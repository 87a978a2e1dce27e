"""The foundation suite: the tasks the foundation issue's targets are stated on.

- constrained, selfsteer vs genlm-control (speed at equal validity), with llamppl (no regex) and
  plain ``generate`` alongside: a no-e sentence (N=8, up to 40 tokens), a no-e paragraph (N=8, up
  to 96 tokens) and a one-line JSON record matching a regex (N=8, up to 48 tokens);
- free text, N=16 x 64 tokens, EOS disallowed: selfsteer (token-level and chunked) vs plain
  batched ``generate``, with genlm-control and llamppl alongside.

Each system runs each task ``repeats`` times, interleaved (the two short constrained tasks
``short_repeats`` times: a run lasts until its slowest particle ends, so its wall time is the
longest of N random lengths and one draw says little); the summary holds per-system medians.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from .harness import Harness
from .record import median_record
from .sizes import Size
from .tasks import Task, free_task, no_e_paragraph_task, no_e_task, record_task


def foundation_tasks(size: Size) -> list[tuple[Task, int]]:
    """The suite's tasks, each with its number of repeats."""
    n = size.no_e_particles
    return [
        (no_e_task(n, size.no_e_tokens), size.short_repeats),
        (no_e_paragraph_task(n, size.paragraph_tokens), size.repeats),
        (record_task(n, size.record_tokens), size.short_repeats),
        (free_task(size.free_particles, size.free_tokens), size.repeats),
    ]


def run_foundation(harness: Harness, size: Size) -> dict[str, Any]:
    plan = foundation_tasks(size)
    records = [r for task, repeats in plan for r in harness.side_by_side([task], repeats)]
    grouped = defaultdict(list)
    for r in records:
        grouped[(r.task, r.system)].append(r)
    summary: dict[str, dict[str, Any]] = defaultdict(dict)
    for (task, system), recs in grouped.items():
        summary[task][system] = median_record(recs)
    return {
        "tasks": [{**t.to_dict(), "repeats": repeats} for t, repeats in plan],
        "repeats": size.repeats,
        "summary": dict(summary),
        "runs": [r.to_dict() for r in records],
    }


def count_timed_runs(harness: Harness, size: Size) -> int:
    return sum(
        repeats for t, repeats in foundation_tasks(size) for r in harness.runners if r.supports(t) is None
    )
