"""``selfsteer run program.py``: run a program file with SMC and print the posterior.

The file defines a `Model` subclass and either a ``make_model(lm)`` function or a module-level
``model`` instance. The LM is loaded only when the file asks for one through ``make_model``, with
``--model``, ``--backend``, ``--device``, ``--dtype`` and ``--tensor-parallel-size`` passed to
`selfsteer.smc.load_lm`.
Test-time scaling flags (``--vote``, ``--explore``, ``--trust``, ``--lag-store``) are described in
`selfsteer.cli.scaling_options`; ``--lag-store`` needs ``make_model(lm, examples=...)``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

from selfsteer.smc.scaling.answers import vote

from .scaling_options import (
    accepts_examples,
    add_scaling_flags,
    lag_memory,
    lag_task,
    print_scaling,
    record_run,
    scaling_options,
    scaling_report,
)


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
    p.add_argument("--backend", default="auto", choices=("auto", "transformers", "vllm"),
                   help="LM backend (default auto: vLLM when installed and CUDA is present, else transformers)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: CUDA if available)")
    p.add_argument("--dtype", default="auto", help="auto (bfloat16 on CUDA, float32 on CPU), float32, bfloat16, float16")
    p.add_argument("--tensor-parallel-size", type=int, default=None,
                   help="GPUs to split the follower over (vLLM backend)")
    p.add_argument("--trace", type=Path, default=None, help="write a JSON trace here (view it with `selfsteer view`)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    add_scaling_flags(p)
    p.set_defaults(func=run)


def load_module(path: Path):
    if not path.is_file():
        raise SystemExit(f"error: no program file at {path}")
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    if not hasattr(module, "make_model") and not hasattr(module, "model"):
        raise SystemExit(f"error: {path} defines neither make_model(lm) nor a `model` instance")
    return module


def load_follower(args: argparse.Namespace):
    """The follower LM the model flags name; a bad choice exits with the loader's message."""
    from selfsteer.smc import load_lm
    from selfsteer.smc.lm.loading import ModelNotFound

    options = {} if args.tensor_parallel_size is None else {"tensor_parallel_size": args.tensor_parallel_size}
    try:
        return load_lm(args.model, backend=args.backend, device=args.device, dtype=args.dtype, **options)
    except (ModelNotFound, ValueError) as e:
        raise SystemExit(f"error: {e}") from e


def load_program(args: argparse.Namespace):
    """The program a file defines (``make_model(lm)`` called with a freshly loaded LM, or ``model``)."""
    module = load_module(args.program)
    if hasattr(module, "make_model"):
        return module.make_model(load_follower(args))
    return module.model


def load_with_logs(args: argparse.Namespace, memory):
    """Build the program, then rebuild it with the logs LAG recalls for its task."""
    module = load_module(args.program)
    if not hasattr(module, "make_model") or not accepts_examples(module.make_model):
        raise SystemExit("error: --lag-store needs the program file to define make_model(lm, examples=...)")
    lm = load_follower(args)
    task, _ = lag_task(module.make_model(lm))
    recall = memory.recall(lm, task)
    print(f"LAG: {len(recall.logs)} log(s) recalled, {recall.n_kv_reused} reused as KV", file=sys.stderr)
    return lm, module.make_model(lm, examples=recall.examples)


def run(args: argparse.Namespace) -> int:
    from selfsteer.smc import smc, smc_steer

    memory = lag_memory(args)
    lm = None
    if memory is not None:
        lm, model = load_with_logs(args, memory)
    else:
        model = load_program(args)
    reweight = scaling_options(args).reweight()
    common = dict(seed=args.seed, max_steps=args.max_steps, time_limit=args.time_limit,
                  record=args.trace is not None or args.trust, progress=True)
    if args.beam:
        if reweight is not None:
            raise SystemExit("error: --explore works with SMC, not with --beam")
        result = smc_steer(model, args.particles, args.beam, **common)
    else:
        result = smc(model, args.particles, ess_threshold=args.ess_threshold, resampling=args.resampling,
                     reweight=reweight, **common)
    if args.trace is not None:
        result.trace.save(args.trace)
        print(f"trace written to {args.trace} (view it: selfsteer view {args.trace})", file=sys.stderr)
    extra = scaling_report(result, args)
    if memory is not None:
        entry = record_run(memory, lm, model, result, vote(result, args.vote or "majority"))
        print(f"LAG: run stored as log {entry}" if entry else "LAG: no answer to store", file=sys.stderr)
    if args.json:
        print(json.dumps({**result.to_dict(), **extra}, indent=2))
    else:
        print(result.summary())
        print_scaling(extra)
    return 0 if result.posterior else 1
