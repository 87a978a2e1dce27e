"""Command-line options shared by ``selfsteer solve``, ``plan`` and ``eval``: which planner, and
how to reach it. Values left out come from the environment (see `selfsteer.planners.load`)."""

from __future__ import annotations

import argparse


def add_planner_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("planner")
    g.add_argument("--planner", default=None,
                   help="library (offline, default), openai[:MODEL] (any OpenAI-compatible server), qwen-coder "
                        "(offline LM; download first), or local:PATH (default: $SELFSTEER_PLANNER)")
    g.add_argument("--planner-url", default=None, help="base URL, e.g. http://localhost:8000/v1 ($SELFSTEER_PLANNER_URL)")
    g.add_argument("--planner-model", default=None, help="model name on that server ($SELFSTEER_PLANNER_MODEL)")
    g.add_argument("--planner-key", default=None, help="API key ($SELFSTEER_PLANNER_KEY); local servers need none")
    g.add_argument("--planner-timeout", type=float, default=None, help="seconds to wait for the planner (default 120)")
    g.add_argument("--exclude-family", default=None, help="leave this program family out of the few-shot examples")


def planner_from_args(args: argparse.Namespace):
    """The planner the options ask for; errors name the missing setting."""
    from selfsteer.planners.load import load_planner

    name = args.planner
    if name is None and (args.planner_url or args.planner_model):
        name = "openai"
    options = {}
    if args.planner_timeout is not None and name and name.startswith("openai"):
        options["timeout"] = args.planner_timeout
    return load_planner(name, base_url=args.planner_url, model=args.planner_model, api_key=args.planner_key,
                        exclude_family=args.exclude_family, **options)


def add_run_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("run")
    g.add_argument("--particles", "-n", type=int, default=8, help="number of particles (default 8)")
    g.add_argument("--follower", default=None, help="follower LM for load_lm (default: bundled SmolLM2-135M-Instruct)")
    g.add_argument("--attempts", type=int, default=3, help="planner attempts, each fed the last error (default 3)")
    g.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    g.add_argument("--time-limit", type=float, default=120.0, help="wall-clock seconds per program run (default 120)")
    g.add_argument("--memory-mb", type=int, default=6144, help="memory limit of a sandboxed run (default 6144)")
    g.add_argument("--max-steps", type=int, default=1000, help="SMC step cap (default 1000)")
    g.add_argument("--cache-dir", default=None, help="program cache directory (default $SELFSTEER_CACHE/programs)")
    g.add_argument("--no-cache", action="store_true", help="neither read nor write the program cache")
    g.add_argument("--allow-weak-sandbox", action="store_true",
                   help="run planner-written programs even where the host lacks an isolation layer "
                        "(bubblewrap, user namespaces, seccomp); the result lists the layers in force")


def limits_from_args(args: argparse.Namespace):
    from selfsteer.planners.sandbox import Limits

    return Limits(wall_s=args.time_limit, memory_mb=args.memory_mb, max_steps=args.max_steps)


def cache_from_args(args: argparse.Namespace):
    from selfsteer.planners.cache import ProgramCache

    return False if args.no_cache else ProgramCache(args.cache_dir)
