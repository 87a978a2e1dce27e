"""``selfsteer eval tasks.jsonl [--jobs N]``: run a task set concurrently and report pass rate,
weighted pass@1 and time per task, side by side with the follower alone."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .planner_options import (
    add_planner_options,
    add_run_options,
    cache_from_args,
    limits_from_args,
    planner_from_args,
)


def register(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a planner on a task set against the follower alone")
    p.add_argument("tasks", type=Path, help='JSON lines: {"task": ..., "family": ..., "checker": {"program": ..., "params": ...}}')
    p.add_argument("--jobs", "-j", type=int, default=2, help="tasks run at once (default 2)")
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="spread the tasks over a Ray cluster (ADDRESS for ray.init; none: $RAY_ADDRESS or a local Ray)")
    p.add_argument("--ray-workers", type=int, default=None, help="Ray worker actors (default: one per cluster CPU)")
    add_planner_options(p)
    add_run_options(p)
    p.add_argument("--reuse", action="store_true", help="reuse cached programs (default: plan every task afresh)")
    p.add_argument("--baseline-tokens", type=int, default=96, help="token budget of a follower-alone sample")
    p.add_argument("--out", type=Path, default=None, help="write the full report as JSON here")
    p.add_argument("--plot", type=Path, default=None, help="write a PNG bar chart here")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from selfsteer.planners.errors import PlannerError
    from selfsteer.planners.evaluate import evaluate, read_tasks

    if args.jobs < 1 or (args.ray_workers is not None and args.ray_workers < 1):
        print("error: --jobs and --ray-workers must be >= 1", file=sys.stderr)
        return 2
    try:
        specs = read_tasks(args.tasks)
        planner = planner_from_args(args)
    except (OSError, ValueError, PlannerError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    options = dict(n_particles=args.particles, attempts=args.attempts, seed=args.seed, limits=limits_from_args(args),
                   cache=cache_from_args(args), reuse=args.reuse, baseline_tokens=args.baseline_tokens)
    if args.ray is not None:
        from functools import partial

        from selfsteer.planners.ray_eval import evaluate_ray, require_ray

        try:
            require_ray()
        except ImportError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        report = evaluate_ray(specs, address=args.ray or None, workers=args.ray_workers, follower=args.follower,
                              planner=partial(planner_from_args, args), **options)  # each worker builds its own
    else:
        report = evaluate(specs, planner=planner, jobs=args.jobs, follower=args.follower, **options)
    print(report.table())
    if args.out:
        args.out.write_text(report.to_json())
        print(f"report written to {args.out}", file=sys.stderr)
    if args.plot:
        print(f"plot written to {report.plot(args.plot)}", file=sys.stderr)
    return 0
