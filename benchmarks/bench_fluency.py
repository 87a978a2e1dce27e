"""Fluency of self-steered answers against particles, masked decoding and best-of-N.

For each task (ids from ``benchmarks/tasks/self_steering_free.jsonl``) the offline library
planner's first plan runs in-process on the bundled follower with each particle count in
``--particles``; one particle is **masked decoding** (the program's masks and the task-prompted
proposal, no resampling). **Best-of-N** samples the follower alone with the task prompt, a batch
at a time, until it has spent the wall time of the SMC run with ``--equal-time`` particles, and
keeps the first sample that passes the program's ``check`` (else the last one).

Per answer: pass (the program's ``check``) and independent pass (the task set's constraint
checker), the share of its words in the English word list,
whether every word is in it, the ESS history's mean and minimum (SMC only) and the wall time;
with ``--judge`` the coherency judge (not the follower) scores the answers after the follower is
freed. Writes a JSON file and a PNG: word share and pass rate against particles, with masked
decoding and best-of-N marked.

    python -m benchmarks.bench_fluency --tasks free_7w_no_u,free_words_bicycle --particles 1,8,32
    python -m benchmarks.bench_fluency --rows benchmarks/results/fluency.json --judge qwen-coder  # judge later
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from pathlib import Path
from typing import Any

from selfsteer.planners.coherence import WordList, load_judge
from selfsteer.planners.evaluate import FollowerAlone
from selfsteer.planners.execute import library_class
from selfsteer.planners.library import LibraryPlanner
from selfsteer.programs.tasks import passes
from selfsteer.smc import load_lm, smc

TASKS = Path(__file__).parent / "tasks" / "self_steering_free.jsonl"
DEFAULT_TASKS = ("free_7w_no_u", "free_words_bicycle", "free_no_o_autumn", "free_lamp_5_words_no_a",
                 "free_acrostic_rain", "free_every_morning_6w")
BEST_OF_BATCH = 4


def read_tasks(ids: list[str]) -> list[dict[str, Any]]:
    rows = {row["id"]: row for row in map(json.loads, TASKS.read_text().splitlines()) if row}
    missing = [i for i in ids if i not in rows]
    if missing:
        raise SystemExit(f"unknown task ids {missing}; see {TASKS}")
    return [rows[i] for i in ids]


def answer_of(result) -> str | None:
    """The most probable output (the answer `solve` reports)."""
    if not result.posterior:
        return None
    output = next(iter(result.posterior))
    return output if isinstance(output, str) else None


def run_smc(lm, cls, task: str, params: dict[str, Any], n: int, seed: int) -> dict[str, Any]:
    model = cls(lm, task, **params)
    started = time.monotonic()
    result = smc(model, n, seed=seed)
    ess = [float(e) for e in result.ess_history]
    answer = answer_of(result)
    return {"answer": answer, "passed": bool(answer is not None and model.check(answer)),
            "time_s": time.monotonic() - started, "ess_mean": sum(ess) / len(ess) if ess else None,
            "ess_min": min(ess) if ess else None, "n_steps": result.n_steps}


def run_best_of(lm, cls, task: str, params: dict[str, Any], budget_s: float, seed: int) -> dict[str, Any]:
    """Follower samples (with the task prompt) until ``budget_s`` is spent; the first passing one wins."""
    checker = cls(lm, task, **params)
    started, drawn, answer, passed = time.monotonic(), 0, None, False
    while not passed and (drawn == 0 or time.monotonic() - started < budget_s):
        result = smc(FollowerAlone(lm, task), BEST_OF_BATCH, ess_threshold=0.0, seed=seed + drawn)
        for p in result.particles:
            drawn += 1
            text = p.output if p.finished and p.alive and isinstance(p.output, str) else None
            if text is None:
                continue
            answer = text
            if checker.check(text):
                passed = True
                break
    return {"answer": answer, "passed": passed, "time_s": time.monotonic() - started, "samples": drawn}


def fluency(words: WordList, row: dict[str, Any]) -> None:
    text = row["answer"] or ""
    row["word_share"] = words.share(text)
    row["all_words_known"] = None if row["word_share"] is None else not words.unknown(text)
    row["unknown_words"] = words.unknown(text)


def run(task_ids: list[str], particles: list[int], equal_time: int, seed: int, out: Path) -> list[dict[str, Any]]:
    """Every system on every task; the rows so far are written to ``out`` after each task."""
    lm, words, planner = load_lm(), WordList(), LibraryPlanner()
    rows = []
    for spec in read_tasks(task_ids):
        plan = planner.plans(spec["task"])[0]
        cls = library_class(plan)
        params = cls.SPEC.validate(dict(plan.params))
        times = {}
        for n in particles:
            row = {"task": spec["id"], "program": plan.program_name, "system": f"smc-{n}", "particles": n,
                   **run_smc(lm, cls, spec["task"], params, n, seed)}
            times[n] = row["time_s"]
            rows.append(row)
        budget = times.get(equal_time) or max(times.values())
        rows.append({"task": spec["id"], "program": plan.program_name, "system": "best-of-n", "particles": None,
                     **run_best_of(lm, cls, spec["task"], params, budget, seed)})
        for row in rows:
            if "word_share" not in row:
                fluency(words, row)
                print(json.dumps({k: row[k] for k in ("task", "system", "passed", "word_share", "time_s", "answer")}),
                      flush=True)
        out.write_text(json.dumps({"rows": rows}, indent=1))
    return rows


def independent(rows: list[dict[str, Any]]) -> None:
    """``independent_pass``: the task set's own constraint checker on each answer (the program's
    ``check`` only verifies what the planner understood)."""
    specs = {spec["id"]: spec for spec in read_tasks(sorted({r["task"] for r in rows}))}
    for row in rows:
        row["independent_pass"] = bool(row["answer"]) and passes(specs[row["task"]]["constraints"], row["answer"])


def judge(rows: list[dict[str, Any]], name: str) -> None:
    scorer = load_judge(name)
    if scorer is None:
        return
    for row, score in zip(rows, scorer.score_many([r["answer"] for r in rows]), strict=True):
        row["coherency"] = score.coherency
        row["judge_loglik_per_token"] = score.loglik_per_token


def summary(rows: list[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """Per system: pass rate, mean word share, share of all-English answers, mean time (and coherency)."""
    out = {}
    for system in dict.fromkeys(r["system"] for r in rows):
        mine = [r for r in rows if r["system"] == system]

        def mean(key: str, mine=mine) -> float | None:
            values = [float(r[key]) for r in mine if r.get(key) is not None]
            return sum(values) / len(values) if values else None

        out[system] = {"pass_rate": mean("passed"), "independent_pass_rate": mean("independent_pass"),
                       "word_share": mean("word_share"),
                       "all_words_known": mean("all_words_known"), "time_s": mean("time_s"),
                       "coherency": mean("coherency"), "ess_mean": mean("ess_mean")}
    return out


def plot(table: dict[str, dict[str, float | None]], path: Path) -> Path:
    from benchmarks.plots import _save, plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    smc_rows = sorted((int(s.split("-")[1]), v) for s, v in table.items() if s.startswith("smc-"))
    for ax, key, label in ((axes[0], "all_words_known", "answers with every word English"),
                           (axes[1], "independent_pass_rate", "pass rate (independent checker)")):
        ax.plot([n for n, _ in smc_rows], [v[key] or 0.0 for _, v in smc_rows], "o-", label="SMC (library program)")
        if "smc-1" in table:
            ax.plot([1], [table["smc-1"][key] or 0.0], "s", color="tab:red", label="masked decoding (1 particle)")
        if "best-of-n" in table:
            ax.axhline(table["best-of-n"][key] or 0.0, color="black", ls="--", label="best-of-N, equal time")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("particles")
        ax.set_ylabel(label)
        ax.set_ylim(-0.05, 1.05)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    return _save(fig, path)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", default=",".join(DEFAULT_TASKS), help="comma-separated task ids")
    ap.add_argument("--particles", default="1,4,8,16,32", help="comma-separated particle counts")
    ap.add_argument("--equal-time", type=int, default=8, help="best-of-N gets the wall time of SMC with this many particles")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--judge", default="none", help="coherency judge: qwen-coder or none")
    ap.add_argument("--rows", default=None, help="summarise (and judge) the rows of an earlier run instead of running")
    ap.add_argument("--out", default="benchmarks/results/fluency.json")
    ap.add_argument("--plot", default="benchmarks/results/fluency.png")
    args = ap.parse_args(argv)
    if args.rows:
        rows = json.loads(Path(args.rows).read_text())["rows"]
    else:
        rows = run(args.tasks.split(","), [int(n) for n in args.particles.split(",")], args.equal_time, args.seed,
                   Path(args.out))
    gc.collect()
    independent(rows)
    if args.judge != "none":
        judge(rows, args.judge)
    table = summary(rows)
    Path(args.out).write_text(json.dumps({"args": vars(args), "summary": table, "rows": rows}, indent=1))
    plot(table, Path(args.plot))
    for system, values in table.items():
        print(system, {k: None if v is None else round(v, 3) for k, v in values.items()})


if __name__ == "__main__":
    main()
