"""Three ways to plan, side by side on the same tasks: the offline library planner, a capable
planner LM (recorded completions replayed over HTTP) and the local planner LM.

- **library**: `LibraryPlanner` picks a hand-written program; it runs in-process.
- **capable**: an `LMPlanner` over `OpenAIChat`, talking to an OpenAI-compatible server on
  127.0.0.1 that replays ``benchmarks/self_steering/capable_completions.jsonl``: completions
  written from the generated prompt alone (few-shot examples from other families, as in a
  leave-one-family-out evaluation), the n-th completion of a task answering its n-th request (a
  second one is the repair written from the first one's feedback). Programs are validated and
  run in the sandbox, exactly as `solve` runs any planner LM's program.
- **local**: Qwen2.5-Coder-1.5B on this CPU; too slow to write whole programs here, so the table
  quotes `benchmarks/local_planner.py`'s measurement (``benchmarks/results/local_planner.json``).

*valid*: the first program passed validation; *pass@1*: the first attempt's answer satisfies the
task (independent checker, `selfsteer.programs.tasks.passes`); *pass*: after up to ``--attempts``
attempts; seconds per task include planning, sandbox start-up and every attempt.

    python -m benchmarks.planner_paths --particles 8 [--only sent_] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.chat_server import ScriptedChatServer
from selfsteer.planners.lm_planner import LMPlanner
from selfsteer.planners.openai_client import OpenAIChat
from selfsteer.planners.solve import SolveResult, solve
from selfsteer.programs.tasks import load_tasks, passes
from selfsteer.smc import load_lm

HERE = Path(__file__).resolve().parent
COMPLETIONS = HERE / "self_steering" / "capable_completions.jsonl"
TASKS = HERE / "tasks" / "self_steering.jsonl"


def replay(recorded: dict[str, list[str]], tasks: dict[str, str]):
    """The server's answer to a request: the next recorded completion for the task it asks about
    (the last user message that states a task; few-shot tasks come before it, feedback after)."""
    served: dict[str, int] = {}

    def answer(body: dict) -> Any:
        asked = [m["content"] for m in body["messages"] if m["role"] == "user" and m["content"].startswith("Task: ")][-1]
        task_id = next(i for i, t in tasks.items() if asked.startswith(f"Task: {t}\n"))
        n = served[task_id] = served.get(task_id, 0) + 1
        return recorded[task_id][min(n, len(recorded[task_id])) - 1]

    return answer


def summary(result: SolveResult, row: dict[str, Any], seconds: float) -> dict[str, Any]:
    first = result.attempts[0] if result.attempts else None
    first_ok = first is not None and first.error is None and first.summary is not None
    return {
        "valid": first is not None and first.error_kind != "validation" and first.plan is not None,
        "pass_at_1": bool(first_ok and passes(row["constraints"], first.summary.answer)),
        "pass": bool(result.check_passed and passes(row["constraints"], result.answer)),
        "attempts": len(result.attempts), "seconds": seconds, "answer": result.answer,
        "errors": [a.error_kind for a in result.attempts if a.error_kind],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--particles", type=int, default=8)
    ap.add_argument("--attempts", type=int, default=2)
    ap.add_argument("--only", default="")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="benchmarks/results/planner_paths.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    recorded = {r["id"]: r["completions"] for r in map(json.loads, COMPLETIONS.read_text().splitlines())}
    rows = [r for r in load_tasks(TASKS) if r["id"] in recorded and args.only in r["id"]]
    lm = load_lm()
    results: dict[str, dict[str, Any]] = {"library": {}, "capable": {}}
    with ScriptedChatServer(replay(recorded, {r["id"]: r["task"] for r in rows})) as server:
        for row in rows:
            t0 = time.monotonic()
            lib = solve(row["task"], planner="library", lm=lm, n_particles=args.particles, seed=0, cache=False,
                        attempts=args.attempts)
            results["library"][row["id"]] = summary(lib, row, time.monotonic() - t0)
            planner = LMPlanner(OpenAIChat(base_url=server.url, model="recorded"), name="capable-recorded",
                                exclude_family=row["family"])
            t0 = time.monotonic()
            cap = solve(row["task"], planner=planner, n_particles=args.particles, seed=0, cache=False,
                        attempts=args.attempts)
            results["capable"][row["id"]] = summary(cap, row, time.monotonic() - t0)
            print(row["id"], {k: {kk: v[row["id"]][kk] for kk in ("valid", "pass_at_1", "pass", "seconds")}
                              for k, v in results.items()}, flush=True)
    local_file = HERE / "results" / "local_planner.json"
    local = json.loads(local_file.read_text()) if local_file.is_file() else None
    totals = {name: {"tasks": len(r), "valid": sum(x["valid"] for x in r.values()),
                     "pass_at_1": sum(x["pass_at_1"] for x in r.values()), "pass": sum(x["pass"] for x in r.values()),
                     "mean_s": sum(x["seconds"] for x in r.values()) / max(len(r), 1)} for name, r in results.items()}
    out = {"particles": args.particles, "attempts": args.attempts, "totals": totals, "tasks": results, "local": local}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(json.dumps(totals, indent=1))


if __name__ == "__main__":
    main()
