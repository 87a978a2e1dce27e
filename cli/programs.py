"""``selfsteer programs [NAME]``: the library's hand-written programs, with their parameters.

Without a name: one line per program (name, family, parameters). With a name: its description,
parameter schema and example tasks. Nothing loads a model.
"""

from __future__ import annotations

import argparse
import json

from .arguments import UsageError


def register(sub) -> None:
    p = sub.add_parser("programs", help="list the library programs and their parameters")
    p.add_argument("name", nargs="?", default=None, help="show one program in full")
    p.add_argument("--json", action="store_true", help="print the specs as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from selfsteer.programs.registry import all_programs, describe_params

    specs = [cls.SPEC for cls in all_programs()]
    if args.name is not None:
        specs = [s for s in specs if s.name == args.name]
        if not specs:
            raise UsageError(f"no library program named {args.name!r}; list them with `selfsteer programs`")
    if args.json:
        print(json.dumps([{"name": s.name, "family": s.family, "description": s.description,
                           "params": s.params_schema, "examples": s.examples} for s in specs], indent=2))
    elif args.name is not None:
        s = specs[0]
        print(f"{s.name} ({s.family})\n\n{s.description}\n\nparameters: {describe_params(s.params_schema)}")
        print(json.dumps(s.params_schema, indent=2))
        for task, params in s.examples:
            print(f"example: {task!r} -> {json.dumps(params)}")
    else:
        width = max(len(s.name) for s in specs)
        for s in specs:
            print(f"{s.name:<{width}}  {s.family:<18}  {describe_params(s.params_schema)}")
    return 0
