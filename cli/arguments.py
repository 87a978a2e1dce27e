"""Argument checking shared by every subcommand: bad input ends in one or two lines that name the
fix, with exit code 2, before any model loads.

- `Parser`: an ``argparse.ArgumentParser`` whose errors print ``selfsteer CMD: error: ...`` and a
  pointer to ``--help`` instead of the full usage text;
- `UsageError`: raised by a subcommand for input argparse cannot check (a program file, a task
  file); ``selfsteer.cli.main`` prints it and exits 2;
- argparse ``type=`` checkers: `count`, `fraction`, `positive`, `seed`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import NoReturn


class UsageError(Exception):
    """A user error: the message (one or two lines) says what is wrong and how to fix it."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are two lines: the fault, and where to read the options."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message}\nsee `{self.prog} --help`", file=sys.stderr)
        sys.exit(2)


def count(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer ``>= minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def fraction(text: str) -> float:
    """An argparse type: a number in [0, 1]."""
    value = _float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must lie in [0, 1], got {value:g}")
    return value


def positive(text: str) -> float:
    """An argparse type: a number > 0 (seconds, sizes)."""
    value = _float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value:g}")
    return value


def non_negative(text: str) -> float:
    """An argparse type: a number >= 0."""
    value = _float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value:g}")
    return value


MAX_SEED = 2**63 - 1


def seed(text: str) -> int:
    """An argparse type: a random seed, a whole number in [0, 2**63)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must lie in [0, 2**63), got {value}")
    return value
