"""The ``selfsteer`` command line. Each subcommand lives in its own module of this package and
exposes ``register(subparsers)``, which adds its parser and sets ``func(args) -> int``.

Exit codes: 0 success, 1 no (verified) answer, 2 a user error (one or two lines on stderr that
name the fix, printed before any model loads where the input allows), 130 interrupted (Ctrl-C).
``--quiet`` shows only errors, ``--verbose`` adds debug logs and third-party warnings; by default
third-party warnings and weight-loading bars are hidden.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import warnings
from importlib import metadata

from .arguments import Parser, UsageError

SUBCOMMANDS = ("run", "view", "solve", "plan", "eval", "programs", "planner", "train", "serve")


def version() -> str:
    try:
        return metadata.version("selfsteer")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> Parser:
    parser = Parser(prog="selfsteer", description="Probabilistic programming for language-model inference.")
    parser.add_argument("--version", action="version", version=f"selfsteer {version()}")
    loud = parser.add_mutually_exclusive_group()
    loud.add_argument("--quiet", "-q", action="store_true", help="print only results and errors")
    loud.add_argument("--verbose", "-v", action="store_true", help="debug logs and third-party warnings")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name in SUBCOMMANDS:
        importlib.import_module(f"selfsteer.cli.{name}").register(sub)
    return parser


def configure_logging(quiet: bool, verbose: bool) -> None:
    """The ``selfsteer`` logger at INFO (WARNING with --quiet, DEBUG with --verbose); third-party
    warnings and progress bars off unless --verbose."""
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    logging.getLogger("selfsteer").setLevel(level)
    if verbose:
        return
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module=r"(transformers|torch|genlm|accelerate)")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # genlm-backend pulls in bitsandbytes, whose CPU build warns about an optional kernel package
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    if quiet:
        os.environ["TQDM_DISABLE"] = "1"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version (0) or a bad argument (2, message printed)
        return e.code if isinstance(e.code, int) else 2
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    configure_logging(args.quiet, args.verbose)
    try:
        return int(args.func(args) or 0)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
