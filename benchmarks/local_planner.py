"""Speed of the offline planner LM (Qwen2.5-Coder-1.5B-Instruct, bfloat16) on this machine.

One process, one model load. The prompt is the compact planner prompt with fixed few-shot
examples, so everything before the task is a static prefix. It measures:

- **cold prefill**: the static prefix computed from scratch (tokens/s), then written to disk;
- **disk load**: the same prefix read back into an emptied prompt cache (what a new process pays);
- **per attempt**: for each task, the tail prefill (task message only) and the decode rate, and
  whether the completion (cut at ``--max-new-tokens``) validates.

Seconds per attempt are reported as measured, and projected for a whole program of
``--program-tokens`` tokens at the measured decode rate (a full program is 300-450 tokens).

    python -m benchmarks.local_planner --tasks 2 --max-new-tokens 96 --threads 1
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import shutil
import tempfile
import time
from pathlib import Path

import torch

from selfsteer.planners.download import require_qwen_coder
from selfsteer.planners.examples import pick_examples
from selfsteer.planners.lm_planner import LMPlanner, extract_program
from selfsteer.planners.local import LocalChat
from selfsteer.planners.validate import ValidationError, validate_program
from selfsteer.smc import load_lm

TASKS = [
    "Write a sentence about the sea without the letter e.",
    "Write a sentence of exactly 9 words about a lighthouse.",
    "Write a paragraph of 3 sentences about winter, each ending with the word 'snow'.",
]
EXAMPLE_TASK = "Write a sentence with exactly 12 words."


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=2)
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--program-tokens", type=int, default=400)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="benchmarks/results/local_planner.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out: dict = {"machine": {"cpu": platform.processor() or platform.machine(), "threads": args.threads},
                 "model": "Qwen2.5-Coder-1.5B-Instruct (GGUF Q4_K_M dequantised to bfloat16)"}
    t0 = time.monotonic()
    lm = load_lm(str(require_qwen_coder()), dtype="bfloat16")
    out["load_s"] = time.monotonic() - t0
    examples = pick_examples(EXAMPLE_TASK, k=1)
    planner = LMPlanner(lambda m: "", examples=examples, compact=True)
    kv_dir = Path(tempfile.mkdtemp(prefix="selfsteer-kv-"))
    chat = LocalChat(lm, max_new_tokens=args.max_new_tokens, temperature=0.2, progress=False, kv_dir=kv_dir)
    first = planner.messages(TASKS[0])
    (static, *_) = reversed(chat.static_prefixes(first))
    t0 = time.monotonic()
    asyncio.run(chat.prime(first))
    cold = time.monotonic() - t0
    out["static_prefix"] = {"tokens": len(static), "cold_prefill_s": cold, "prefill_tokens_per_s": len(static) / cold}
    print(json.dumps(out), flush=True)
    lm.prompt_cache.clear()
    reread = LocalChat(lm, max_new_tokens=args.max_new_tokens, temperature=0.2, progress=False, kv_dir=kv_dir)
    t0 = time.monotonic()
    asyncio.run(reread.prime(first))
    out["static_prefix"]["disk_load_s"] = time.monotonic() - t0
    out["static_prefix"]["disk_mb"] = sum(f.stat().st_size for f in kv_dir.glob("*.pt")) / 2**20
    attempts = []
    for task in TASKS[: args.tasks]:
        completion = reread(planner.messages(task))
        s = reread.last_stats
        try:
            validate_program(extract_program(completion))
            verdict = "valid"
        except (ValidationError, SyntaxError) as e:
            verdict = str(e).splitlines()[-1][:120]
        decode_rate = s["tokens_per_s"]
        attempts.append({"task": task, **s, "measured_attempt_s": s["prefill_s"] + s["seconds"],
                         "projected_attempt_s": s["prefill_s"] + args.program_tokens / decode_rate,
                         "completion": completion, "validation": verdict})
        print(json.dumps(attempts[-1])[:400], flush=True)
    out["attempts"] = attempts
    shutil.rmtree(kv_dir, ignore_errors=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(json.dumps({k: v for k, v in out.items() if k != "attempts"}, indent=1))


if __name__ == "__main__":
    main()
