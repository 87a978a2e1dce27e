"""Seconds per SMC step at each torch thread count: ``python -m benchmarks.threads``.

Runs the no-e sentence program (`programs/examples/no_e_sentence.py`) on the bundled model with
``--particles`` particles for ``--steps`` steps, once per thread count in ``--threads`` (0 = torch's
default) per repeat; the counts take turns within a repeat, so the machine's drift (other users on
a shared machine) touches all alike. Prints the median seconds per step of each count and its
ratio over the fastest, and writes ``threads.json`` under ``--out``. The CLI's ``--threads``
default (`selfsteer.cli.threads.DEFAULT_THREADS`) follows this measurement.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from pathlib import Path

import numpy as np
import torch

from .environment import load_shared, machine_description

EXAMPLE = Path(__file__).parent.parent / "programs" / "examples" / "no_e_sentence.py"


def seconds_per_step(model, particles: int, steps: int, seed: int) -> float:
    from selfsteer.smc import smc

    started = time.perf_counter()
    result = smc(model, particles, seed=seed, max_steps=steps)
    return (time.perf_counter() - started) / max(result.n_steps, 1)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2, 0])
    p.add_argument("--particles", type=int, default=8)
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = p.parse_args(argv)
    default = torch.get_num_threads()
    spec = importlib.util.spec_from_file_location("no_e_sentence", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    shared = load_shared(device="cpu", dtype="float32")
    model = module.make_model(shared.lm)
    times: dict[int, list[float]] = {t: [] for t in args.threads}
    seconds_per_step(model, args.particles, 2, seed=0)  # warm-up
    for r in range(args.repeats):
        for t in args.threads:
            torch.set_num_threads(t or default)
            times[t].append(seconds_per_step(model, args.particles, args.steps, seed=r))
    medians = {t: float(np.median(v)) for t, v in times.items()}
    fastest = min(medians.values())
    print(f"torch default threads: {default}; {args.particles} particles, {args.steps} steps, {args.repeats} repeats")
    for t, m in medians.items():
        label = f"{t}" if t else f"default ({default})"
        print(f"threads {label:>12}: {m:.3f} s/step   x{m / fastest:.2f} of the fastest")
    record = {"seconds_per_step": {str(t): v for t, v in times.items()}, "median": {str(t): m for t, m in medians.items()},
              "torch_default_threads": default, "particles": args.particles, "steps": args.steps,
              "machine": machine_description(default, "cpu")}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "threads.json").write_text(json.dumps(record, indent=2))
    return record


if __name__ == "__main__":
    main()
