"""``--threads``: the CPU threads torch uses, on every subcommand that runs a model.

The default is one thread: on a small shared CPU (2 cores, other jobs running) one thread was
the fastest per SMC step in ``benchmarks/threads.py`` (see benchmarks/README.md), and torch's own
choice (every core) was several times slower. Pass ``--threads N`` on a machine of your own.
The count is also exported as ``SELFSTEER_THREADS`` and ``OMP_NUM_THREADS`` for the processes the
command starts (sandboxed program runs of ``solve`` and ``eval``).
"""

from __future__ import annotations

import argparse
import os

from .arguments import count

DEFAULT_THREADS = 1


def add_threads(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=count(1), default=DEFAULT_THREADS,
                   help=f"CPU threads for the model (default {DEFAULT_THREADS}: fastest on small shared CPUs)")


def apply_threads(args: argparse.Namespace) -> int:
    """Set torch's thread count from ``--threads``; returns it."""
    import torch

    os.environ["SELFSTEER_THREADS"] = os.environ["OMP_NUM_THREADS"] = str(args.threads)
    torch.set_num_threads(args.threads)
    return args.threads
