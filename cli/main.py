"""The ``selfsteer`` command line. Each subcommand lives in its own module of this package and
exposes ``register(subparsers)``, which adds its parser and sets ``func(args) -> int``."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

SUBCOMMANDS = ("run", "view", "solve", "plan", "eval", "planner", "train", "serve")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="selfsteer", description="Probabilistic programming for language-model inference."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"selfsteer.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    # genlm-backend pulls in bitsandbytes, whose CPU build warns about an optional kernel package
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
