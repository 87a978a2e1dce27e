"""Grammar-constrained against unconstrained program writing by a local planner LM.

For each task the planner LM writes one completion unconstrained (`LocalChat`) and one under
the program grammar (`LocalChat(grammar=True)`, SMC over `ProgramWriter`); a completion counts as
valid when its program passes `validate_program`. The default planner is the bundled
SmolLM2-135M standing in for Qwen2.5-Coder (whose decoding is too slow on a 2-core CPU to write
many programs: see `local_planner`); ``--model qwen-coder`` runs the real one.

    python -m benchmarks.constrained_planner --tasks 2 --max-new-tokens 300
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from benchmarks.local_planner import EXAMPLE_TASK, TASKS
from selfsteer.planners.download import require_qwen_coder
from selfsteer.planners.examples import pick_examples
from selfsteer.planners.lm_planner import LMPlanner, extract_program
from selfsteer.planners.local import LocalChat
from selfsteer.planners.validate import ValidationError, validate_program
from selfsteer.smc import load_lm


def verdict(completion: str) -> str:
    try:
        validate_program(extract_program(completion))
    except (ValidationError, SyntaxError) as e:
        return str(e).splitlines()[-1][:160]
    return "valid"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm", choices=["smollm", "qwen-coder"])
    ap.add_argument("--tasks", type=int, default=2)
    ap.add_argument("--max-new-tokens", type=int, default=300)
    ap.add_argument("--particles", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="benchmarks/results/constrained_planner.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    lm = load_lm() if args.model == "smollm" else load_lm(str(require_qwen_coder()), dtype="bfloat16")
    planner = LMPlanner(lambda m: "", examples=pick_examples(EXAMPLE_TASK, k=1), compact=True)
    rows = []
    for grammar in (False, True):
        chat = LocalChat(lm, max_new_tokens=args.max_new_tokens, progress=False, grammar=grammar,
                         grammar_particles=args.particles)
        for task in TASKS[: args.tasks]:
            t0 = time.monotonic()
            completion = chat(planner.messages(task))
            rows.append({"grammar": grammar, "task": task, **chat.last_stats, "total_s": time.monotonic() - t0,
                         "validation": verdict(completion) if completion else "no program finished",
                         "completion": completion})
            print(json.dumps({k: v for k, v in rows[-1].items() if k != "completion"}), flush=True)
    totals = {str(g): {"valid": sum(r["validation"] == "valid" for r in rows if r["grammar"] == g),
                       "tasks": sum(r["grammar"] == g for r in rows)} for g in (False, True)}
    out = {"model": args.model, "max_new_tokens": args.max_new_tokens, "particles": args.particles,
           "totals": totals, "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(json.dumps(totals))


if __name__ == "__main__":
    main()
