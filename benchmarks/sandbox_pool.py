"""Side by side: a library program run in-process versus in a warm sandbox worker.

For each library program named on the command line (its first SPEC example: task and params),
with the bundled follower, the same seed and particle count, this times, interleaved:

- ``in_process``: ``smc`` on the caller's already loaded follower (what `solve` does for library plans);
- ``pooled``: `run_job` on a worker booted beforehand (`start_worker(warm=True)`, untimed): the
  job line, the jail's program run and the validated report (what `SandboxPool.run_library` costs
  once a worker is warm);
- ``cold``: `run_sandboxed`-style start, boot and run together (the fixed cost the pool removes).

It prints and writes (``--out``) per-program medians, the ratio pooled / in-process and the fixed
cost pooled - in-process. Usage: ``python -m benchmarks.sandbox_pool --reps 3 regex sentence_word_count``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import time

from selfsteer.planners.outcome import summarize
from selfsteer.planners.sandbox import Limits, program_job, run_job, start_worker
from selfsteer.programs.registry import all_programs
from selfsteer.smc import load_lm, smc_async


async def one_program(cls, lm, reps: int, n_particles: int, limits: Limits) -> dict:
    task, params = cls.SPEC.examples[0]
    job = program_job(None, task, n_particles=n_particles, seed=0, limits=limits, library=(cls.SPEC.name, params))
    times: dict[str, list[float]] = {"in_process": [], "pooled": [], "cold": []}
    answers = {}
    for _ in range(reps):
        t0 = time.perf_counter()
        result = await smc_async(cls(lm, task, **cls.SPEC.validate(dict(params))), n_particles, seed=0,
                                 max_steps=limits.max_steps, time_limit=limits.wall_s)
        times["in_process"].append(time.perf_counter() - t0)
        answers["in_process"] = summarize(result).answer
        worker = await start_worker(None, limits, warm=True)  # untimed: booted ahead, as in a pool
        t0 = time.perf_counter()
        run = await run_job(worker, job)
        times["pooled"].append(time.perf_counter() - t0)
        answers["pooled"] = run.summary.answer
        t0 = time.perf_counter()
        run = await run_job(await start_worker(None, limits), job)
        times["cold"].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"program": cls.SPEC.name, "seconds": times, "median_s": med,
            "pooled_over_in_process": med["pooled"] / med["in_process"],
            "pooled_fixed_cost_s": med["pooled"] - med["in_process"],
            "same_answer": answers["pooled"] == answers["in_process"]}


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("programs", nargs="+", help="library program names (SPEC.name)")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--particles", type=int, default=4)
    p.add_argument("--out", default="benchmarks/results/sandbox_pool.json")
    args = p.parse_args()
    import torch

    torch.set_num_threads(1)  # the sandbox child runs torch on one thread too
    lm = load_lm()
    by_name = {c.SPEC.name: c for c in all_programs()}
    limits = Limits(wall_s=300, load_s=300)
    rows = [await one_program(by_name[name], lm, args.reps, args.particles, limits) for name in args.programs]
    report = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load_avg": os.getloadavg()},
              "particles": args.particles, "reps": args.reps, "rows": rows}
    for r in rows:
        m = r["median_s"]
        print(f"{r['program']}: in-process {m['in_process']:.2f} s, pooled {m['pooled']:.2f} s "
              f"({r['pooled_over_in_process']:.2f}x, +{r['pooled_fixed_cost_s']:.2f} s), cold {m['cold']:.2f} s, "
              f"same answer: {r['same_answer']}")
    with open(args.out, "w") as f:
        json.dump(report, f, indent=1)


if __name__ == "__main__":
    asyncio.run(main())
