"""``selfsteer eval tasks.jsonl [--jobs N] [--judge qwen-coder|none]``: run a task set concurrently and
report pass rate, weighted pass@1, time per task and coherency (a judge LM's 1-10 score, its
log-likelihood per token, the share of English words), side by side with the follower alone."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .arguments import UsageError, count
from .planner_options import (
    add_planner_options,
    add_run_options,
    cache_from_args,
    limits_from_args,
    planner_from_args,
)
from .threads import apply_threads


def register(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a planner on a task set against the follower alone")
    p.add_argument("tasks", type=Path, help='JSON lines: {"task": ..., "family": ..., "checker": {"program": ..., "params": ...}}')
    p.add_argument("--jobs", "-j", type=count(1), default=2, help="tasks run at once (default 2)")
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="spread the tasks over a Ray cluster (ADDRESS for ray.init; none: $RAY_ADDRESS or a local Ray)")
    p.add_argument("--ray-workers", type=count(1), default=None, help="Ray worker actors (default: one per cluster CPU)")
    add_planner_options(p)
    add_run_options(p)
    p.add_argument("--reuse", action="store_true", help="reuse cached programs (default: plan every task afresh)")
    p.add_argument("--baseline-tokens", type=count(1), default=96, help="token budget of a follower-alone sample")
    p.add_argument("--out", type=Path, default=None, help="write the full report as JSON here")
    p.add_argument("--plot", type=Path, default=None, help="write a PNG here: pass rate against coherency per system")
    p.add_argument("--judge", default=None,
                   help="coherency judge LM: qwen-coder (default when downloaded), none, or any load_lm model path")
    p.set_defaults(func=run)


def load_tasks(path: Path) -> list[Any]:
    """The task specs of a JSON-lines file, each checker program known and its parameters valid."""
    from selfsteer.planners.evaluate import read_tasks
    from selfsteer.programs.registry import all_programs

    if not path.is_file():
        raise UsageError(f"no task file at {path}; pass a JSON-lines file with one {{\"task\": ...}} object per line")
    try:
        specs = read_tasks(path)
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise UsageError(str(e)) from None
    if not specs:
        raise UsageError(f"{path} holds no tasks; write one JSON object per line, e.g. {{\"task\": \"Write a haiku.\"}}")
    programs = {cls.SPEC.name: cls for cls in all_programs()}
    for i, spec in enumerate(specs, 1):
        checker = spec.checker
        if checker is None:
            continue
        if not isinstance(checker, dict) or checker.get("program") not in programs:
            name = checker.get("program") if isinstance(checker, dict) else checker
            raise UsageError(f"{path}: task {i}: unknown checker program {name!r}; "
                             "list the library programs with `selfsteer programs`")
        try:
            programs[checker["program"]].SPEC.validate(dict(checker.get("params", {})))
        except (TypeError, ValueError) as e:
            raise UsageError(f"{path}: task {i}: {e}") from None
    return specs


def judge_from_args(args: argparse.Namespace):
    """The coherency judge the flags ask for (None: not judged); a missing judge or word list is a usage error."""
    from selfsteer.planners.coherence import (
        NO_JUDGE_MESSAGE,
        WordListMissing,
        default_judge_name,
        load_judge,
    )
    from selfsteer.smc.lm.loading import ModelNotFound

    name = args.judge or default_judge_name()
    if args.ray is not None and name != "none":
        if args.judge is not None:
            raise UsageError("--judge works with local runs; with --ray pass --judge none and rescore the report "
                             "(python -m benchmarks.bench_self_steering --rescore REPORT --judge qwen-coder)")
        name = "none"
    elif args.judge is None and name == "none":
        print(NO_JUDGE_MESSAGE, file=sys.stderr)
    try:
        return load_judge(name)
    except (ModelNotFound, WordListMissing) as e:
        raise UsageError(str(e)) from None


def run(args: argparse.Namespace) -> int:
    from selfsteer.planners.evaluate import evaluate

    if args.out is not None and not args.out.parent.is_dir():
        raise UsageError(f"--out {args.out}: the folder {args.out.parent} does not exist")
    if args.plot is not None and not args.plot.parent.is_dir():
        raise UsageError(f"--plot {args.plot}: the folder {args.plot.parent} does not exist")
    specs = load_tasks(args.tasks)
    planner = planner_from_args(args)
    if args.ray is not None:
        from selfsteer.planners.ray_eval import require_ray

        try:
            require_ray()
        except ImportError as e:
            raise UsageError(str(e)) from None
    apply_threads(args)
    judge = judge_from_args(args)
    options = dict(n_particles=args.particles, attempts=args.attempts, seed=args.seed, limits=limits_from_args(args),
                   cache=cache_from_args(args), reuse=args.reuse, baseline_tokens=args.baseline_tokens)
    if args.ray is not None:
        from functools import partial

        from selfsteer.planners.ray_eval import evaluate_ray

        report = evaluate_ray(specs, address=args.ray or None, workers=args.ray_workers, follower=args.follower,
                              planner=partial(planner_from_args, args), **options)  # each worker builds its own
    else:
        report = evaluate(specs, planner=planner, jobs=args.jobs, follower=args.follower, judge=judge, **options)
    print(report.table())
    print(f"seed: {args.seed}   threads: {args.threads}")
    if args.out:
        args.out.write_text(report.to_json())
        print(f"report written to {args.out}", file=sys.stderr)
    if args.plot:
        print(f"plot written to {report.plot(args.plot)}", file=sys.stderr)
    return 0
