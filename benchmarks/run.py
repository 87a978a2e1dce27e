"""Side-by-side benchmarks: ``python -m benchmarks.run --suite all|foundation|scaling|memory
[--quick] [--out benchmarks/results]``.

Runs the chosen suites on the bundled SmolLM2-135M-Instruct (one model object shared by every
system, in one process; memory points each in a fresh process) and writes to ``--out``:
``summary.json`` (machine, settings, every raw run, medians, ratios and the targets with
pass/fail), ``summary.md`` (the same as tables), and PNG plots (``foundation.png``,
``scaling.png``, ``memory.png``). With ``--update`` the suites this run leaves out are kept from
the summary already in ``--out`` (each suite records when, how and where it ran).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path

from tqdm.auto import tqdm

from selfsteer.smc.lm.loading import default_device

from . import foundation, memory, plots, report, results_file, scaling, targets
from .environment import SharedModel, load_shared, machine_description, model_dir, set_threads
from .harness import Harness
from .sizes import SIZES, get_size
from .systems import RUNNERS, make_runners

SUITES = ("foundation", "scaling", "memory")
DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    p.add_argument("--suite", default="all", choices=("all", *SUITES), help="which suite to run (default all)")
    p.add_argument("--quick", action="store_true", help="reduced sizes, a couple of minutes per suite (= --size quick)")
    p.add_argument("--size", choices=SIZES, default=None, help="full (default), quick or tiny")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    p.add_argument("--systems", default=",".join(RUNNERS), help=f"comma-separated, from {','.join(RUNNERS)}")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1; 0 = torch's default)")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: CUDA if available)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeats", type=int, default=None, help="timed repeats of every foundation task (default by size: full 3, the short constrained tasks 9)")
    p.add_argument("--update", action="store_true",
                   help="keep the other suites' results from the summary already in --out (same --size)")
    a = p.parse_args(argv)
    a.argv = list(sys.argv[1:] if argv is None else argv)
    if a.quick and a.size not in (None, "quick"):
        p.error("--quick means --size quick; give one of them")
    a.size = "quick" if a.quick else (a.size or "full")
    a.systems = [s.strip() for s in a.systems.split(",") if s.strip()]
    unknown = [s for s in a.systems if s not in RUNNERS]
    if unknown:
        p.error(f"unknown system(s) {unknown}; choose from {list(RUNNERS)}")
    return a


def run(args: argparse.Namespace, shared: SharedModel | None = None) -> dict:
    """Run the suites ``args`` names (on ``shared``, loaded here if not given); returns the summary."""
    size = get_size(args.size)
    if args.repeats is not None:
        size = replace(size, repeats=args.repeats, short_repeats=args.repeats)
    suites = SUITES if args.suite == "all" else (args.suite,)
    threads = set_threads(args.threads)
    started = time.time()
    in_process = [s for s in ("foundation", "scaling") if s in suites]
    shared = shared or (load_shared(args.device) if in_process else None)
    device = shared.device if shared else (args.device or default_device())
    runners, missing = make_runners(args.systems, shared) if in_process else ([], {})
    harness = Harness(runners, seed=args.seed)
    total = sum(m.count_timed_runs(harness, size) for name, m in (("foundation", foundation), ("scaling", scaling)) if name in suites)
    total += memory.count_runs(size) if "memory" in suites else 0
    results: dict = {}
    with tqdm(total=total, desc="benchmarks", unit="run") as bar:
        harness.bar = bar
        if "foundation" in suites:
            results["foundation"] = foundation.run_foundation(harness, size)
            results["foundation"]["ratios"] = targets.ratios(results["foundation"])
        if "scaling" in suites:
            results["scaling"] = scaling.run_scaling(harness, size)
        if "memory" in suites:
            results["memory"] = memory.run_memory(size, threads=args.threads, device=args.device, seed=args.seed, bar=bar)
    command = "python -m benchmarks.run " + " ".join(args.argv)
    when = datetime.fromtimestamp(started, UTC).isoformat(timespec="seconds")
    machine = machine_description(threads, device)
    return {
        "command": command,
        "started": when,
        "duration_s": time.time() - started,
        "machine": machine,
        "suite_runs": {suite: {"started": when, "command": command, "machine": machine} for suite in suites},
        "model": {"name": "SmolLM2-135M-Instruct (bundled)", "dir": str(model_dir())},
        "settings": {"size": size.name, "suites": list(suites), "seed": args.seed, "threads": threads,
                     "size_parameters": asdict(size)},
        "systems": {name: {"available": name not in missing, "reason": missing.get(name)}
                    for name in (args.systems if in_process else memory.SYSTEMS)},
        "suites": results,
        "targets": targets.evaluate(results, size=size.name, device=device),
    }


def merge_previous(summary: dict, previous: dict) -> dict:
    """``summary`` plus the suites of an earlier run's summary that it did not redo; targets re-evaluated."""
    size = summary["settings"]["size"]
    if previous["settings"]["size"] != size:
        raise SystemExit(f"--update: the results in --out are at size {previous['settings']['size']!r}, this run "
                         f"at {size!r}; run with --size {previous['settings']['size']} or write to another --out")
    earlier = previous.get("suite_runs") or {
        suite: {"started": previous["started"], "command": previous["command"], "machine": previous["machine"]}
        for suite in previous["suites"]
    }
    for suite, results in previous["suites"].items():
        if suite not in summary["suites"]:
            summary["suites"][suite] = results
            summary["suite_runs"][suite] = earlier[suite]
    device = summary["suite_runs"].get("scaling", summary)["machine"]["device"]
    summary["targets"] = targets.evaluate(summary["suites"], size=size, device=device)
    return summary


def write(summary: dict, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "summary.json", out / "summary.md"]
    results_file.write(paths[0], summary)
    paths[1].write_text(report.render(summary))
    suites = summary["suites"]
    if "foundation" in suites:
        paths.append(plots.plot_foundation(suites["foundation"], out / "foundation.png"))
    if "scaling" in suites:
        paths.append(plots.plot_scaling(suites["scaling"], out / "scaling.png"))
    if "memory" in suites:
        paths.append(plots.plot_memory(suites["memory"], out / "memory.png"))
    return paths


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    previous = args.out / "summary.json"
    if args.update and not previous.exists():
        raise SystemExit(f"--update: no earlier summary at {previous}; run without --update first")
    summary = run(args)
    if args.update:
        summary = merge_previous(summary, json.loads(previous.read_text()))
    paths = write(summary, args.out)
    print(report.render(summary))
    print("\nwritten: " + ", ".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
