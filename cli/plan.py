"""``selfsteer plan "TASK"``: print the program a planner writes (or picks) for a task; nothing runs."""

from __future__ import annotations

import argparse
import json
import sys

from .planner_options import add_planner_options, planner_from_args


def register(sub) -> None:
    p = sub.add_parser("plan", help="print the inference program a planner writes or picks for a task")
    p.add_argument("task", help="the task in plain language")
    add_planner_options(p)
    p.add_argument("--attempts", type=int, default=3, help="retries when a written program fails validation")
    p.add_argument("--prompt", action="store_true", help="also print the prompt sent to a planner LM")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from selfsteer.planners.errors import PlannerError
    from selfsteer.planners.plan import NoProgramFits
    from selfsteer.planners.solve import plan
    from selfsteer.planners.validate import ValidationError

    try:
        result = plan(args.task, planner=planner_from_args(args), attempts=args.attempts)
    except (NoProgramFits, PlannerError, ValidationError, ValueError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if args.prompt and result.prompt:
        for m in result.prompt:
            print(f"----- {m['role']} -----\n{m['content']}\n")
    what = result.program_name or result.class_name
    header = f"# {what} ({result.origin})"
    header += f"\n# interpreted as: {result.interpreted_as()}"
    if result.params:
        header += f"  params: {json.dumps(result.params)}"
    print(header)
    print(result.source)
    return 0
