"""Self-steering on COLLIE-style and puzzle tasks: the library planner + SMC vs the follower alone.

For every task of ``benchmarks/tasks/self_steering.jsonl`` (JSON lines: id, family, task,
constraints; see `selfsteer.programs.tasks`):

- **selfsteer**: the offline `LibraryPlanner` picks a program and its parameters, which runs with
  SMC (``--particles`` particles) on the bundled SmolLM2-135M-Instruct. *pass* = its answer (the
  most probable output) satisfies the task's constraints, checked by the independent checker;
  *weighted pass@1* = the posterior probability of outputs that satisfy them (DisCIPL's metric).
- **follower alone**: the same number of plain samples from the follower prompted with the task
  (equal weights). *pass* and *weighted pass@1* are both the fraction of samples that satisfy the
  constraints (the chance that one plain sample passes); *pass@N* = at least one sample passes.

Coherency (`selfsteer.planners.coherence`, with ``--judge qwen-coder``, the default when it is
downloaded): the judge's expected 1-10 score, its log-likelihood per token and the share of words
in an English word list, for selfsteer's answer and for the follower alone's first sample, per
task, per family and overall. The judge runs after all tasks, so the timings exclude it.

Writes ``benchmarks/results/self_steering.json`` (totals, per family, every task with its
outputs), a PNG bar chart beside it and, when judged, ``*_coherency.png``: pass rate against
coherency per system (DisCIPL's Table 1 as a picture). ``--rescore FILE`` judges the answers of
an earlier run instead of running the tasks again.

    python benchmarks/bench_self_steering.py --particles 8 [--threads 1] [--only sent_] [--limit 5] [--judge none]
    python benchmarks/bench_self_steering.py --rescore benchmarks/results/self_steering.json --out judged.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from selfsteer.planners.coherence import (
    NO_JUDGE_MESSAGE,
    Coherence,
    CoherenceJudge,
    default_judge_name,
    load_judge,
    summarize,
)
from selfsteer.planners.evaluate import plot_pass_vs_coherency
from selfsteer.planners.library import LibraryPlanner
from selfsteer.planners.plan import NoProgramFits
from selfsteer.programs.registry import get_program
from selfsteer.programs.tasks import load_tasks, passes
from selfsteer.smc import ProgramError, TextModel, load_lm, smc

HERE = Path(__file__).resolve().parent
BASELINE_TOKENS = {"collie_sentences": 64, "collie_paragraphs": 192, "puzzles": 256, "free_sentences": 64,
                   "free_compound": 96, "free_lines": 96, "free_paragraphs": 128, "free_structured": 128}


class FollowerAlone(TextModel):
    """Plain sampling: the follower prompted with the task writes until EOS or ``max_tokens``."""

    def __init__(self, lm, task: str, *, max_tokens: int):
        super().__init__(lm, task, max_tokens=max_tokens + 1)
        self.budget = max_tokens

    async def step(self):
        await self.extend(max_tokens=self.budget, allow_eos=True)
        self.finish(self.text.strip())


def run_selfsteer(lm, planner: LibraryPlanner, row: dict[str, Any], n: int, seed: int, time_limit: float) -> dict[str, Any]:
    t0 = time.monotonic()
    out: dict[str, Any] = {"program": None, "params": None, "planned_as_expected": None if row.get("checker") is None else False, "answer": None,
                           "passed": False, "weighted_pass": 0.0, "own_check": None, "error": None, "outputs": []}
    try:
        plan = planner.plan(row["task"])
    except NoProgramFits as e:
        out["error"] = f"NoProgramFits: {e}"
        out["seconds"] = time.monotonic() - t0
        return out
    expected = row.get("checker")
    out.update(program=plan.program_name, params=plan.params, planned_as_expected=None if expected is None else
               (plan.program_name, plan.params) == (expected.get("program"), expected.get("params")))
    try:
        program = get_program(plan.program_name)(lm, row["task"], **plan.params)
        result = smc(program, n, seed=seed, time_limit=time_limit)
    except ProgramError as e:
        out["error"] = str(e)
        out["seconds"] = time.monotonic() - t0
        return out
    posterior = result.posterior
    out["answer"] = result.best
    out["passed"] = result.best is not None and passes(row["constraints"], result.best)
    out["weighted_pass"] = sum(p for o, p in posterior.items() if passes(row["constraints"], o))
    out["own_check"] = None if result.best is None else bool(program.check(result.best))
    out["status"] = str(result.status)
    out["outputs"] = [{"text": o, "probability": p} for o, p in posterior.items()]
    out["seconds"] = time.monotonic() - t0
    return out


def run_baseline(lm, row: dict[str, Any], n: int, seed: int) -> dict[str, Any]:
    t0 = time.monotonic()
    budget = BASELINE_TOKENS.get(row["family"], 192)
    result = smc(FollowerAlone(lm, row["task"], max_tokens=budget), n, ess_threshold=0.0, seed=seed)
    outputs = [p.output for p in result.particles]
    ok = [bool(o) and passes(row["constraints"], o) for o in outputs]
    return {"pass_fraction": sum(ok) / n, "pass_at_n": any(ok), "outputs": outputs, "seconds": time.monotonic() - t0}


def mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def judged(records: list[dict[str, Any]]) -> dict[str, float | None]:
    """Mean coherency figures over the records that were judged (empty when none was)."""
    scores = [Coherence(**r["coherence"]) for r in records if r.get("coherence")]
    return summarize(scores) if scores else {}


def totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    s = [r["selfsteer"] for r in rows]
    b = [r["baseline"] for r in rows]
    expected = [float(x["planned_as_expected"]) for x in s if x["planned_as_expected"] is not None]
    return {
        "n_tasks": len(rows),
        "selfsteer": {"pass_rate": mean([float(x["passed"]) for x in s]), "weighted_pass@1": mean([x["weighted_pass"] for x in s]),
                      "seconds_per_task": mean([x["seconds"] for x in s]), "planned_as_expected": mean(expected), **judged(s)},
        "follower_alone": {"pass_rate": mean([x["pass_fraction"] for x in b]), "weighted_pass@1": mean([x["pass_fraction"] for x in b]),
                           "pass@N": mean([float(x["pass_at_n"]) for x in b]), "seconds_per_task": mean([x["seconds"] for x in b]),
                           **judged(b)},
    }


def judge_all(judge: CoherenceJudge, done: list[dict[str, Any]]) -> None:
    """Add ``coherence`` to selfsteer's answer and to the follower alone's first sample of every task."""
    texts = [r["selfsteer"]["answer"] for r in done] + [(r["baseline"]["outputs"] or [None])[0] for r in done]
    scores = [s.to_dict() for s in judge.score_many(texts)]
    for r, own, alone in zip(done, scores[: len(done)], scores[len(done):], strict=True):
        r["selfsteer"]["coherence"], r["baseline"]["coherence"] = own, alone


def summarize_report(report: dict[str, Any], done: list[dict[str, Any]]) -> dict[str, Any]:
    report["totals"] = totals(done)
    report["by_family"] = {f: totals([r for r in done if r["family"] == f]) for f in sorted({r["family"] for r in done})}
    report["tasks"] = done
    return report


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = ["all", *report["by_family"]]
    stats = [report["totals"], *report["by_family"].values()]
    bars = [("selfsteer pass rate", lambda t: t["selfsteer"]["pass_rate"]),
            ("selfsteer weighted pass@1", lambda t: t["selfsteer"]["weighted_pass@1"]),
            ("follower alone pass@1", lambda t: t["follower_alone"]["pass_rate"]),
            ("follower alone pass@N", lambda t: t["follower_alone"]["pass@N"])]
    fig, ax = plt.subplots(figsize=(11, 4))
    width = 0.2
    for i, (label, get) in enumerate(bars):
        ax.bar([g + i * width for g in range(len(groups))], [get(t) or 0.0 for t in stats], width, label=label)
    ax.set_xticks([g + 1.5 * width for g in range(len(groups))],
                  [f"{g}\n({t['n_tasks']} tasks)" for g, t in zip(groups, stats, strict=True)])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("fraction of tasks")
    ax.set_title(f"Library planner + SMC ({report['settings']['particles']} particles) vs the follower alone, SmolLM2-135M")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", type=Path, default=HERE / "tasks" / "self_steering.jsonl")
    p.add_argument("--particles", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--time-limit", type=float, default=900.0, help="seconds per SMC run")
    p.add_argument("--only", default=None, help="run only tasks whose id starts with this")
    p.add_argument("--limit", type=int, default=None, help="run at most this many tasks")
    p.add_argument("--skip", type=int, default=0, help="skip this many tasks first (split a set across processes)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (1 helps on a busy machine)")
    p.add_argument("--out", type=Path, default=HERE / "results" / "self_steering.json")
    p.add_argument("--judge", default=None, help="coherency judge: qwen-coder (default when downloaded), none, or a model path")
    p.add_argument("--rescore", type=Path, default=None, help="judge the answers of this earlier result file instead of running")
    p.add_argument("--combine", nargs="+", default=None, metavar="NAME=FILE",
                   help="write a small summary of judged result files (totals, families, short per-task rows) and one plot")
    args = p.parse_args()
    if args.combine:
        combine(dict(item.split("=", 1) for item in args.combine), args.out)
        return
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    judge_name = args.judge or default_judge_name()
    if judge_name == "none" and args.judge is None:
        print(NO_JUDGE_MESSAGE)
    if args.rescore:
        report = json.loads(args.rescore.read_text())
        judge = load_judge(judge_name)
        if judge is not None:
            judge_all(judge, report["tasks"])
            report["settings"]["judge"] = judge.name
        write(summarize_report(report, report["tasks"]), args.out)
        return
    rows = [r for r in load_tasks(args.tasks) if args.only is None or r["id"].startswith(args.only)][args.skip:][: args.limit]
    lm = load_lm()
    planner = LibraryPlanner()
    settings = {"particles": args.particles, "seed": args.seed, "follower": lm.name, "planner": "library", "judge": None,
                "tasks_file": str(args.tasks.relative_to(HERE.parent) if args.tasks.is_relative_to(HERE.parent) else args.tasks)}
    partial = args.out.with_suffix(".partial.json")
    partial.parent.mkdir(parents=True, exist_ok=True)
    done = []
    for row in tqdm(rows, desc="tasks", unit="task"):
        record = {"id": row["id"], "family": row["family"], "task": row["task"], "constraints": row["constraints"]}
        record["selfsteer"] = run_selfsteer(lm, planner, row, args.particles, args.seed, args.time_limit)
        record["baseline"] = run_baseline(lm, row, args.particles, args.seed)
        done.append(record)
        tqdm.write(f"{row['id']:24} selfsteer {'PASS' if record['selfsteer']['passed'] else 'fail'} "
                   f"w={record['selfsteer']['weighted_pass']:.2f} ({record['selfsteer']['seconds']:.0f}s)  "
                   f"alone {record['baseline']['pass_fraction']:.2f}  | {str(record['selfsteer']['answer'])[:70]!r}")
        partial.write_text(json.dumps({"settings": settings, "tasks": done}))  # for --rescore if the run is cut short
    del lm
    judge = load_judge(judge_name)
    if judge is not None:
        judge_all(judge, done)
        settings["judge"] = judge.name
    write(summarize_report({"settings": settings}, done), args.out)


def write(report: dict[str, Any], out: Path) -> None:
    """The JSON report, its bar chart and (when judged) the pass-rate-against-coherency plot."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    plot(report, out.with_suffix(".png"))
    print(json.dumps(report["totals"], indent=2))
    print(f"wrote {out} and {out.with_suffix('.png')}")
    if report["settings"].get("judge"):
        points = coherency_points(report)
        path = plot_pass_vs_coherency(points, out.with_name(out.stem + "_coherency.png"),
                                      title=f"{report['totals']['n_tasks']} tasks, judge {report['settings']['judge']}")
        print(f"wrote {path}")


def combine(named: dict[str, str], out: Path) -> None:
    """One small JSON (totals, per family and a short row per task for each judged set) and one plot."""
    summary, points = {}, []
    for name, path in named.items():
        report = json.loads(Path(path).read_text())
        summary[name] = {"settings": report["settings"], "totals": report["totals"], "by_family": report["by_family"],
                         "tasks": [compact(r) for r in report["tasks"]]}
        points += coherency_points(report, label=f"{name}: ")
    out.write_text(json.dumps(summary, indent=1))
    plot_pass_vs_coherency(points, out.with_suffix(".png"), title="pass rate against coherency, " + ", ".join(
        f"{n} ({s['totals']['n_tasks']} tasks)" for n, s in summary.items()))
    print(f"wrote {out} and {out.with_suffix('.png')}")


def compact(record: dict[str, Any]) -> dict[str, Any]:
    """A task's outcome in one short row: pass, coherency figures, answers cut to 160 characters."""
    def figures(side: dict[str, Any]) -> dict[str, Any]:
        c = side.get("coherence") or {}
        return {k: None if c.get(k) is None else round(c[k], 3) for k in ("coherency", "loglik_per_token", "word_share")}

    s, b = record["selfsteer"], record["baseline"]
    return {"id": record["id"], "family": record["family"], "passed": s["passed"], "program": s["program"],
            "answer": None if s["answer"] is None else str(s["answer"])[:160], **figures(s),
            "alone_pass_fraction": b["pass_fraction"], "alone_answer": str((b["outputs"] or [""])[0])[:160],
            **{f"alone_{k}": v for k, v in figures(b).items()}}


def coherency_points(report: dict[str, Any], label: str = "") -> list[tuple[str, str, float, float]]:
    """(group, system, pass rate, coherency) for all tasks and each family, both systems."""
    groups = {f"{label}all": report["totals"], **{f"{label}{f}": t for f, t in report["by_family"].items()}}
    return [(g, system, t[key]["pass_rate"], t[key]["coherency"])
            for g, t in groups.items() for system, key in (("selfsteer", "selfsteer"), ("follower alone", "follower_alone"))
            if t[key].get("coherency") is not None]


if __name__ == "__main__":
    main()
