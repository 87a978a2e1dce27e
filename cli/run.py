"""``selfsteer run program.py``: run a program file with SMC and print the posterior.

The file defines a `Model` subclass and either a ``make_model(lm, ...)`` function or a
module-level ``model`` instance (see `selfsteer.cli.program_file`); ``--task TEXT`` and
``--param KEY=VALUE`` are passed to ``make_model`` as keyword arguments. The LM is loaded only when
the file asks for one through ``make_model``, with ``--model``, ``--backend``, ``--device``,
``--dtype`` and ``--tensor-parallel-size`` passed to `selfsteer.smc.load_lm`. Every option and
the file itself are checked before the model loads. Without ``--seed`` a seed is drawn at random
and printed, so every run can be repeated. Ctrl-C stops the run and prints the particles so far.
Test-time scaling flags (``--vote``, ``--explore``, ``--trust``, ``--lag-store``) are described in
`selfsteer.cli.scaling_options`; ``--lag-store`` needs ``make_model(lm, examples=...)``.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from pathlib import Path

from selfsteer.smc.scaling.answers import vote

from .arguments import MAX_SEED, UsageError, count, fraction, positive, seed
from .program_file import build_model, load_module, model_arguments, parse_params
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
from .threads import add_threads, apply_threads

RESAMPLING = ("multinomial", "stratified", "systematic", "residual")
INTERRUPTED = 130


def register(sub) -> None:
    p = sub.add_parser("run", help="run a program file with SMC and print the posterior")
    p.add_argument("program", type=Path, help="a .py file defining make_model(lm, ...) or a `model` instance")
    p.add_argument("--task", default=None, help="passed to make_model as task=TEXT")
    p.add_argument("--param", dest="params", action="append", default=[], metavar="KEY=VALUE",
                   help="passed to make_model as KEY=VALUE (VALUE read as JSON when it parses); repeatable")
    p.add_argument("--particles", "-n", type=count(1), default=8, help="number of particles (default 8)")
    p.add_argument("--seed", type=seed, default=None, help="random seed (default: drawn at random and printed)")
    p.add_argument("--ess-threshold", type=fraction, default=0.5, help="resample when ESS < this * N (0 = IS)")
    p.add_argument("--resampling", default="stratified", choices=RESAMPLING, help="resampling scheme (default stratified)")
    p.add_argument("--beam", type=count(1), default=None, help="use SMC-steer with this many expansions per particle")
    p.add_argument("--max-steps", type=count(1), default=1000, help="step cap (default 1000)")
    p.add_argument("--time-limit", type=positive, default=None, help="wall-clock limit in seconds")
    p.add_argument("--model", default=None, help="follower LM (default: the bundled SmolLM2-135M-Instruct)")
    p.add_argument("--backend", default="auto", choices=("auto", "transformers", "vllm"),
                   help="LM backend (default auto: vLLM when installed and CUDA is present, else transformers)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: CUDA if available)")
    p.add_argument("--dtype", default="auto", help="auto (bfloat16 on CUDA, float32 on CPU), float32, bfloat16, float16")
    p.add_argument("--tensor-parallel-size", type=count(1), default=None,
                   help="GPUs to split the follower over (vLLM backend)")
    add_threads(p)
    p.add_argument("--trace", type=Path, default=None, help="write a JSON trace here (view it with `selfsteer view`)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    add_scaling_flags(p)
    p.set_defaults(func=run)


def load_follower(args: argparse.Namespace):
    """The follower LM the model flags name; a bad choice is a `UsageError` with the loader's message."""
    from selfsteer.smc import load_lm
    from selfsteer.smc.lm.loading import ModelNotFound

    options = {} if args.tensor_parallel_size is None else {"tensor_parallel_size": args.tensor_parallel_size}
    try:
        return load_lm(args.model, backend=args.backend, device=args.device, dtype=args.dtype, **options)
    except (ModelNotFound, ValueError, ImportError) as e:
        raise UsageError(str(e)) from e


def check_trace_path(path: Path | None) -> None:
    if path is not None and not path.parent.is_dir():
        raise UsageError(f"--trace {path}: the folder {path.parent} does not exist; create it or pick another path")


def prepare(args: argparse.Namespace):
    """Check everything, then load the LM and build the program: (module, lm, model, memory)."""
    check_trace_path(args.trace)
    reweight = scaling_options(args).reweight()
    if args.beam and reweight is not None:
        raise UsageError("--explore works with SMC, not with --beam; drop one of them")
    memory = lag_memory(args)
    module = load_module(args.program)
    kwargs = model_arguments(module, args.program, args.task, parse_params(args.params))
    if memory is not None and (not hasattr(module, "make_model") or not accepts_examples(module.make_model)):
        raise UsageError("--lag-store needs the program file to define make_model(lm, examples=...)")
    apply_threads(args)
    lm = load_follower(args) if hasattr(module, "make_model") else None
    model = build_model(module, args.program, lm, kwargs)
    if memory is not None:
        task, _ = lag_task(model)
        recall = memory.recall(lm, task)
        print(f"LAG: {len(recall.logs)} log(s) recalled, {recall.n_kv_reused} reused as KV", file=sys.stderr)
        model = build_model(module, args.program, lm, kwargs | {"examples": recall.examples})
    return lm, model, memory, reweight


def run(args: argparse.Namespace) -> int:
    from selfsteer.smc import smc, smc_steer
    from selfsteer.smc.inference import ProgramError
    from selfsteer.smc.result import Status

    lm, model, memory, reweight = prepare(args)
    if args.seed is None:
        args.seed = secrets.randbelow(MAX_SEED)
        print(f"seed: {args.seed} (drawn at random; repeat the run with --seed {args.seed})", file=sys.stderr)
    common = dict(seed=args.seed, max_steps=args.max_steps, time_limit=args.time_limit,
                  record=args.trace is not None or args.trust, progress=not args.quiet)
    try:
        if args.beam:
            result = smc_steer(model, args.particles, args.beam, **common)
        else:
            result = smc(model, args.particles, ess_threshold=args.ess_threshold, resampling=args.resampling,
                         reweight=reweight, **common)
    except ProgramError as e:
        raise UsageError(f"{e}; fix the program") from None  # the engine names the program line
    if args.trace is not None:
        result.trace.data["meta"].update(program=f"{type(model).__name__} ({args.program})",
                                         task=args.task or getattr(model, "task", None))
        result.trace.save(args.trace)
        print(f"trace written to {args.trace} (view it: selfsteer view {args.trace})", file=sys.stderr)
    extra = scaling_report(result, args)
    if memory is not None:
        entry = record_run(memory, lm, model, result, vote(result, args.vote or "majority"))
        print(f"LAG: run stored as log {entry}" if entry else "LAG: no answer to store", file=sys.stderr)
    if args.json:
        print(json.dumps({**result.to_dict(), "threads": args.threads, **extra}, indent=2))
    else:
        print(result.summary())
        print(f"seed: {args.seed}   threads: {args.threads}")
        print_scaling(extra)
    if result.status == Status.INTERRUPTED:
        return INTERRUPTED
    return 0 if result.posterior else 1
