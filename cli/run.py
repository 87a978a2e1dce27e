"""``selfsteer run program.py``: run a program file with SMC and print the posterior.

The file defines a `Model` subclass and either a ``make_model(lm)`` function or a module-level
``model`` instance. The LM is loaded only when the file asks for one through ``make_model``.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("run", help="run a program file with SMC and print the posterior")
    p.add_argument("program", type=Path, help="a .py file defining make_model(lm) or a `model` instance")
    p.add_argument("--particles", "-n", type=int, default=8, help="number of particles (default 8)")
    p.add_argument("--seed", type=int, default=None, help="random seed (fixes the run)")
    p.add_argument("--ess-threshold", type=float, default=0.5, help="resample when ESS < this * N (0 = IS)")
    p.add_argument("--resampling", default="stratified", help="multinomial, stratified, systematic or residual")
    p.add_argument("--beam", type=int, default=None, help="use SMC-steer with this many expansions per particle")
    p.add_argument("--max-steps", type=int, default=1000, help="step cap (default 1000)")
    p.add_argument("--time-limit", type=float, default=None, help="wall-clock limit in seconds")
    p.add_argument("--model", default=None, help="follower LM (default: the bundled SmolLM2-135M-Instruct)")
    p.add_argument("--trace", type=Path, default=None, help="write a JSON trace here (view it with `selfsteer view`)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def load_program(path: Path, model_name: str | None):
    if not path.is_file():
        raise SystemExit(f"error: no program file at {path}")
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    if hasattr(module, "make_model"):
        from selfsteer.smc import load_lm

        return module.make_model(load_lm(model_name))
    if hasattr(module, "model"):
        return module.model
    raise SystemExit(f"error: {path} defines neither make_model(lm) nor a `model` instance")


def run(args: argparse.Namespace) -> int:
    from selfsteer.smc import smc, smc_steer

    model = load_program(args.program, args.model)
    common = dict(seed=args.seed, max_steps=args.max_steps, time_limit=args.time_limit,
                  record=args.trace is not None, progress=True)
    if args.beam:
        result = smc_steer(model, args.particles, args.beam, **common)
    else:
        result = smc(model, args.particles, ess_threshold=args.ess_threshold, resampling=args.resampling, **common)
    if args.trace is not None:
        result.trace.save(args.trace)
        print(f"trace written to {args.trace} (view it: selfsteer view {args.trace})", file=sys.stderr)
    print(result.to_json() if args.json else result.summary())
    return 0 if result.posterior else 1
