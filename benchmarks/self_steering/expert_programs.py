"""Selfsteer with expert programs vs the follower alone (the DisCIPL* setting).

The "expert" planner hands each task the library program named by its checker, with the
checker's parameters: an upper reference for any planner that has to pick or write programs.

    python benchmarks/self_steering/expert_programs.py [--particles 8] [--jobs 2] [--plot out.png]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from selfsteer.planners import NoProgramFits, Plan, evaluate
from selfsteer.planners.evaluate import read_tasks

HERE = Path(__file__).parent


class ExpertPlanner:
    """Answers each known task with the library program and parameters of its checker."""

    name = "expert"

    def __init__(self, specs):
        self.by_task = {s.task: s.checker for s in specs if s.checker}

    def plan(self, task: str, *, feedback: str | None = None) -> Plan:
        checker = self.by_task.get(task)
        if checker is None:
            raise NoProgramFits(f"no expert program is known for {task!r}")
        return Plan(source="", class_name="", params=checker.get("params", {}), origin="library",
                    program_name=checker["program"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", type=Path, default=HERE.parent / "tasks" / "self_steering.jsonl")
    p.add_argument("--particles", type=int, default=8)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--plot", type=Path, default=None)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    specs = read_tasks(args.tasks)
    report = evaluate(specs, planner=ExpertPlanner(specs), jobs=args.jobs, n_particles=args.particles, cache=False)
    print(report.table())
    for o in report.outcomes:
        print(json.dumps({"task": o.task, "passed": o.passed, "answer": o.answer,
                          "baseline_passed": o.baseline_passed, "baseline_answer": o.baseline_answer}))
    if args.out:
        args.out.write_text(report.to_json())
    if args.plot:
        report.plot(args.plot)


if __name__ == "__main__":
    main()
