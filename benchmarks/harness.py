"""Running systems side by side: warm-ups, interleaved repeats, and per-system time budgets.

Fair timing on a shared machine: every system runs each task in turn (the order rotates between
repeats), so a burst of load from elsewhere hits all of them alike; each (system, kind of task)
gets one untimed warm-up run first, so lazy one-off work (mask tables, tokenizer tries, kernel
selection) is not billed to the first timed run.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from tqdm.auto import tqdm

from .record import RunRecord
from .systems import Runner
from .tasks import Task


@dataclass
class Harness:
    """Runs tasks on runners with one seed; ``bar`` (optional tqdm) advances by one per timed run."""

    runners: Sequence[Runner]
    seed: int = 0
    bar: tqdm | None = None
    _warm: set[tuple[str, str]] = field(default_factory=set)

    def warm_up(self, runner: Runner, task: Task) -> None:
        key = (runner.name, task.constraint)
        if key not in self._warm:
            self._warm.add(key)
            runner.run(task.resized(n_particles=1, max_tokens=2), self.seed)

    def run_one(self, runner: Runner, task: Task, repeat: int = 0) -> RunRecord:
        self.warm_up(runner, task)
        if self.bar is not None:
            self.bar.set_postfix_str(f"{runner.name} {task.name} N={task.n_particles} T={task.max_tokens}")
        record = runner.run(task, self.seed + repeat, repeat)
        if self.bar is not None:
            self.bar.update(1)
        return record

    def side_by_side(self, tasks: Iterable[Task], repeats: int) -> list[RunRecord]:
        """Every supporting runner on every task, ``repeats`` times, interleaved."""
        records = []
        for task in tasks:
            runners = [r for r in self.runners if r.supports(task) is None]
            for rep in range(repeats):
                shift = rep % max(len(runners), 1)
                for runner in runners[shift:] + runners[:shift]:
                    records.append(self.run_one(runner, task, rep))
        return records

    def sweep(self, tasks: Sequence[Task], budget_s: float) -> tuple[list[RunRecord], list[dict]]:
        """Tasks in increasing size; a runner whose run took longer than ``budget_s`` (or failed)
        sits out the larger ones. Returns the records and the skipped (system, task) points."""
        records, skipped = [], []
        stopped: dict[str, str] = {}
        for task in tasks:
            for runner in self.runners:
                if runner.supports(task) is not None:
                    continue
                if runner.name in stopped:
                    skipped.append({"system": runner.name, "n_particles": task.n_particles,
                                    "max_tokens": task.max_tokens, "reason": stopped[runner.name]})
                    if self.bar is not None:
                        self.bar.update(1)
                    continue
                record = self.run_one(runner, task)
                records.append(record)
                if not record.ok:
                    stopped[runner.name] = f"failed at N={task.n_particles}, T={task.max_tokens}: {record.error}"
                elif record.wall_s > budget_s:
                    stopped[runner.name] = (
                        f"N={task.n_particles}, T={task.max_tokens} took {record.wall_s:.0f} s "
                        f"> budget {budget_s:.0f} s"
                    )
        return records, skipped
