"""``selfsteer solve "TASK"``: plan, run and verify; print the answer, its posterior weight and
the check outcome, with a progress display on stderr."""

from __future__ import annotations

import argparse
import json
import sys

from .planner_options import (
    add_planner_options,
    add_run_options,
    cache_from_args,
    limits_from_args,
    planner_from_args,
)
from .scaling_options import add_scaling_flags, print_scaling


def register(sub) -> None:
    p = sub.add_parser("solve", help="solve a task: plan a program, run it with SMC, verify the answer")
    p.add_argument("task", help='the task in plain language, e.g. "Write a sentence without the letter e."')
    add_planner_options(p)
    add_run_options(p)
    add_scaling_flags(p, lag=False)
    p.add_argument("--no-reuse", action="store_true", help="plan afresh even if a cached program exists")
    p.add_argument("--show-program", action="store_true", help="print the program that produced the answer")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def progress_printer():
    """A progress display on stderr: one line per stage, with the attempt number."""
    from tqdm.auto import tqdm

    def show(stage: str, attempt: int, detail: str) -> None:
        label = "cached" if attempt == 0 else f"attempt {attempt}"
        tqdm.write(f"[{label}] {'failed: ' if stage == 'error' else ''}{detail}", file=sys.stderr)

    return show


def run(args: argparse.Namespace) -> int:
    from selfsteer.planners.errors import PlannerError
    from selfsteer.planners.solve import solve

    try:
        planner = planner_from_args(args)
    except (PlannerError, ValueError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        result = solve(args.task, planner=planner, n_particles=args.particles, follower=args.follower,
                       attempts=args.attempts, seed=args.seed, limits=limits_from_args(args),
                       cache=cache_from_args(args), reuse=not args.no_reuse, progress=progress_printer(),
                       explore=args.explore, explore_b0=args.explore_b0, vote=args.vote, trust=args.trust)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, default=repr))
    elif result.check_passed:
        source = "the cached program" if result.from_cache else f"attempt {result.attempt}"
        print(result.answer)
        print(f"\ninterpreted as: {result.plan.interpreted_as()}")
        print(f"posterior weight: {result.weight:.3f}   check: passed   program: "
              f"{result.plan.program_name or result.plan.class_name} ({source}, {result.plan.origin})   "
              f"time: {result.seconds:.1f}s")
        print_scaling({"vote": result.vote, "trust": result.trust})
    else:
        print(f"no verified answer after {len(result.attempts)} attempt(s); check: not passed\nlast error: {result.error}")
    if args.show_program and result.plan is not None:
        print("\n# program\n" + result.plan.source)
    return 0 if result.check_passed else 1
