"""``selfsteer eval tasks.jsonl [--jobs N] [--judge qwen-coder|none]``: run a task set concurrently and
report pass rate, weighted pass@1, time per task and coherency (a judge LM's 1-10 score, its
log-likelihood per token, the share of English words), side by side with the follower alone."""

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
    add_planner_options(p)
    add_run_options(p)
    p.add_argument("--reuse", action="store_true", help="reuse cached programs (default: plan every task afresh)")
    p.add_argument("--baseline-tokens", type=int, default=96, help="token budget of a follower-alone sample")
    p.add_argument("--out", type=Path, default=None, help="write the full report as JSON here")
    p.add_argument("--plot", type=Path, default=None, help="write a PNG here: pass rate against coherency per system")
    p.add_argument("--judge", default=None,
                   help="coherency judge LM: qwen-coder (default when downloaded), none, or any load_lm model path")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from selfsteer.planners.coherence import (
        NO_JUDGE_MESSAGE,
        WordListMissing,
        default_judge_name,
        load_judge,
    )
    from selfsteer.planners.errors import PlannerError
    from selfsteer.planners.evaluate import evaluate, read_tasks
    from selfsteer.smc.lm.loading import ModelNotFound

    if args.jobs < 1:
        print("error: --jobs must be >= 1", file=sys.stderr)
        return 2
    try:
        specs = read_tasks(args.tasks)
        planner = planner_from_args(args)
    except (OSError, ValueError, PlannerError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    judge_name = args.judge or default_judge_name()
    if args.judge is None and judge_name == "none":
        print(NO_JUDGE_MESSAGE, file=sys.stderr)
    try:
        judge = load_judge(judge_name)
    except (ModelNotFound, WordListMissing) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    report = evaluate(specs, planner=planner, jobs=args.jobs, n_particles=args.particles, follower=args.follower,
                      attempts=args.attempts, seed=args.seed, limits=limits_from_args(args),
                      cache=cache_from_args(args), reuse=args.reuse, baseline_tokens=args.baseline_tokens, judge=judge)
    print(report.table())
    if args.out:
        args.out.write_text(report.to_json())
        print(f"report written to {args.out}", file=sys.stderr)
    if args.plot:
        print(f"plot written to {report.plot(args.plot)}", file=sys.stderr)
    return 0
