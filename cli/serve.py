"""``selfsteer serve``: an OpenAI-compatible HTTP server over `solve` (see `selfsteer.planners.serve`).

    selfsteer serve --port 8000
    curl localhost:8000/v1/chat/completions -d '{"model": "selfsteer",
         "messages": [{"role": "user", "content": "Write a sentence without the letter e."}]}'
"""

from __future__ import annotations

import argparse
import sys

from .planner_options import (
    add_planner_options,
    add_run_options,
    cache_from_args,
    limits_from_args,
    planner_from_args,
)


def register(sub) -> None:
    p = sub.add_parser("serve", help="serve solve over an OpenAI-compatible HTTP API (POST /v1/chat/completions)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--served-model-name", default="selfsteer", help="the model name clients ask for (default selfsteer)")
    add_planner_options(p)
    add_run_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from selfsteer.planners.errors import PlannerError

    if not 0 <= args.port <= 65535:
        print(f"error: --port must be 0-65535, got {args.port}", file=sys.stderr)
        return 2
    if args.particles < 1 or args.attempts < 1 or args.time_limit <= 0:
        print("error: --particles and --attempts must be >= 1 and --time-limit > 0", file=sys.stderr)
        return 2
    try:
        import fastapi  # noqa: F401
        import uvicorn
    except ImportError as e:
        print(f"error: selfsteer serve needs FastAPI and uvicorn ({e.name} is missing): "
              "pip install 'selfsteer[serve]'", file=sys.stderr)
        return 2
    from selfsteer.planners.engine import SolveEngine
    from selfsteer.planners.serve import create_app

    try:
        planner = planner_from_args(args)
    except (PlannerError, ValueError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    engine = SolveEngine(planner=planner, follower=args.follower, n_particles=args.particles, seed=args.seed,
                         attempts=args.attempts, limits=limits_from_args(args), cache=cache_from_args(args))
    print(f"loading the follower {args.follower or '(bundled SmolLM2-135M-Instruct)'}...", file=sys.stderr)
    engine.start()
    try:
        app = create_app(engine, model=args.served_model_name)
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    finally:
        engine.close()
    return 0
