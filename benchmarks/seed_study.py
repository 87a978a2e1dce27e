"""Many paired seeds of one constrained task: how much a timing ratio depends on the draw.

Command (from the repository root)::

    python -m benchmarks.seed_study --task no_e --seeds 40

A constrained run lasts until its slowest particle ends, so its wall time and its number of
forward passes are random: the foundation suite's few seeds give a noisy ratio. Here every system
(default: selfsteer and genlm-control) runs the task on the same seeds ``--first-seed`` ..
``--first-seed + --seeds - 1``, interleaved as in `benchmarks.run`, on the bundled model. Reported
per system: median and mean wall time, mean CPU time (less sensitive to other load on the
machine), mean and median forward passes, time per forward pass (total wall / total forwards);
and for each other system against the first, the ratios of median wall, mean wall, mean CPU time
and mean forward passes with 90% paired-bootstrap intervals
(`benchmarks.stats`). A wall-time ratio is the product of the forward-pass ratio and the
per-forward ratio, which separates "takes more model calls" from "pays more per call".

Writes ``seed_study_<task>.json`` (every run, the summary) and ``seed_study_<task>.png`` (the
distributions of wall time and forward passes) under ``--out`` and prints a table.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from .environment import SharedModel, load_shared, machine_description, set_threads
from .harness import Harness
from .plots import plot_seed_study
from .record import RunRecord, save_report
from .stats import paired, paired_bootstrap, ratio
from .systems import RUNNERS, make_runners
from .tasks import Task, no_e_paragraph_task, no_e_task, record_task

TASKS = {"no_e": no_e_task, "json_record": record_task, "no_e_paragraph": no_e_paragraph_task}
DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.seed_study", description=__doc__.splitlines()[0])
    p.add_argument("--task", default="no_e", choices=sorted(TASKS))
    p.add_argument("--seeds", type=int, default=40, help="number of seeds (default 40)")
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--systems", default="selfsteer,genlm-control",
                   help="comma-separated; ratios are against the first (default selfsteer,genlm-control)")
    p.add_argument("--particles", type=int, default=None, help="override the task's particles (default 8)")
    p.add_argument("--tokens", type=int, default=None, help="override the task's token budget")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--device", default=None)
    p.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16"),
                   help="the shared model's precision, for every system (default auto: float32 on CPU)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    a = p.parse_args(argv)
    a.argv = list(sys.argv[1:] if argv is None else argv)
    a.systems = [s.strip() for s in a.systems.split(",") if s.strip()]
    unknown = [s for s in a.systems if s not in RUNNERS]
    if unknown:
        p.error(f"unknown system(s) {unknown}; choose from {list(RUNNERS)}")
    if len(a.systems) < 2:
        p.error("a seed study compares systems: name at least two in --systems")
    if a.seeds < 2:
        p.error(f"--seeds must be at least 2, got {a.seeds}")
    return a


def system_summary(records: list[RunRecord]) -> dict[str, Any]:
    walls = np.array([r.wall_s for r in records])
    forwards = np.array([r.n_forward for r in records])
    return {
        "runs": len(records),
        "wall_median_s": float(np.median(walls)), "wall_mean_s": float(walls.mean()),
        "cpu_mean_s": float(np.mean([r.cpu_s for r in records])),
        "forwards_mean": float(forwards.mean()), "forwards_median": float(np.median(forwards)),
        "s_per_forward": float(walls.sum() / forwards.sum()) if forwards.sum() else None,
        "valid_share": float(np.mean([r.valid_share for r in records])),
    }


def comparison(runs: list[dict], base: str, other: str) -> dict[str, Any]:
    """``other`` against ``base`` over the seeds both completed (ratios > 1: ``other`` takes more)."""
    a_wall, b_wall = paired(runs, base, other, "wall_s")
    a_cpu, b_cpu = paired(runs, base, other, "cpu_s")
    a_fwd, b_fwd = paired(runs, base, other, "n_forward")
    out: dict[str, Any] = {"paired_seeds": len(a_wall)}
    for key, a, b, stat in (("wall_median", a_wall, b_wall, "median"), ("wall_mean", a_wall, b_wall, "mean"),
                            ("cpu_mean", a_cpu, b_cpu, "mean"), ("forwards_mean", a_fwd, b_fwd, "mean")):
        out[f"{key}_ratio"] = ratio(a, b, stat)
        out[f"{key}_ci90"] = paired_bootstrap(a, b, stat)
    out["per_forward_ratio"] = (sum(b_wall) / sum(b_fwd)) / (sum(a_wall) / sum(a_fwd))
    return out


def run_study(args: argparse.Namespace, shared: SharedModel | None = None) -> dict[str, Any]:
    threads = set_threads(args.threads)
    shared = shared or load_shared(args.device, args.dtype)
    task: Task = TASKS[args.task]()
    task = task.resized(n_particles=args.particles, max_tokens=args.tokens)
    runners, missing = make_runners(args.systems, shared)
    if missing:
        raise SystemExit("cannot run: " + "; ".join(f"{k}: {v}" for k, v in missing.items()))
    started = time.time()
    with tqdm(total=args.seeds * len(runners), desc=f"seed study {task.name}", unit="run") as bar:
        records = Harness(runners, seed=args.first_seed, bar=bar).side_by_side([task], args.seeds)
    failed = [r for r in records if not r.ok]
    if failed:
        raise SystemExit(f"{len(failed)} run(s) failed, first: {failed[0].system} seed "
                         f"{args.first_seed + failed[0].repeat}: {failed[0].error}")
    by_system = {r.name: [x for x in records if x.system == r.name] for r in runners}
    base = runners[0].name
    runs = [r.to_dict() for r in records]
    return {
        "command": "python -m benchmarks.seed_study " + " ".join(args.argv),
        "started": datetime.fromtimestamp(started, UTC).isoformat(timespec="seconds"),
        "duration_s": time.time() - started,
        "machine": machine_description(threads, shared.device),
        "dtype": str(shared.model.dtype).removeprefix("torch."),
        "task": task.to_dict(),
        "seeds": list(range(args.first_seed, args.first_seed + args.seeds)),
        "summary": {name: system_summary(recs) for name, recs in by_system.items()},
        "comparisons": {name: comparison(runs, base, name) for name in by_system if name != base},
        "base": base,
        "runs": runs,
    }


def render(study: dict[str, Any]) -> str:
    t = study["task"]
    lines = [f"{t['name']}: N={t['n_particles']}, up to {t['max_tokens']} tokens, {len(study['seeds'])} seeds, "
             f"{study.get('dtype', 'float32')}",
             "", "| system | wall median s | wall mean s | CPU mean s | forwards mean | forwards median | ms per forward | valid |",
             "|---|---|---|---|---|---|---|---|"]
    for name, s in study["summary"].items():
        ms = f"{1000 * s['s_per_forward']:.0f}" if s["s_per_forward"] else "-"
        lines.append(f"| {name} | {s['wall_median_s']:.2f} | {s['wall_mean_s']:.2f} | {s['cpu_mean_s']:.2f} | {s['forwards_mean']:.1f} | "
                     f"{s['forwards_median']:.0f} | {ms} | {s['valid_share']:.2f} |")
    lines += ["", f"| against {study['base']} | median wall | mean wall | mean CPU | mean forwards | per forward (wall) |",
              "|---|---|---|---|---|---|"]
    for name, c in study["comparisons"].items():
        cells = [f"{c[k + '_ratio']:.2f}x ({c[k + '_ci90'][0]:.2f}-{c[k + '_ci90'][1]:.2f})"
                 for k in ("wall_median", "wall_mean", "cpu_mean", "forwards_mean")]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {c['per_forward_ratio']:.2f}x |")
    lines.append("\n(ratios: the other system's statistic over the first's; 90% paired-bootstrap intervals)")
    return "\n".join(lines)


def write(study: dict[str, Any], out: Path) -> list[Path]:
    dtype = study.get("dtype", "float32")
    suffix = "" if dtype == "float32" else f"_{dtype}"
    return save_report(study, out, f"seed_study_{study['task']['name']}{suffix}", plot_seed_study)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    study = run_study(args)
    paths = write(study, args.out)
    print(render(study))
    print("\nwritten: " + ", ".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
