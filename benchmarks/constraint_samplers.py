"""Per-token cost of constrained token draws on the bundled model, route by route.

For each constraint a single context generates ``--tokens`` tokens under it; before each draw the
LM's next-token distribution is fetched (and timed separately), so the numbers are the
constraint's own cost per token, as wall time and as CPU time of the (single) Python thread,
which a busy shared machine distorts less. Routes:

- ``auto (per state)``: the `Regex` default: "mask" in states where few tokens start viably,
  "awrs" elsewhere.
- ``mask (state cache)``: the exact viable set, cached per regex automaton state; the first
  visit of a state pays one pruned trie walk. ``warm``: the same run again, states cached.
- ``mask (walk each step)``: the same walk with the cache cleared before every draw.
- ``mask (check each candidate)``: for a grammar, one check per token whose bytes all occur in
  the grammar (the default when there are at most 128 such tokens).
- ``awrs``: adaptive weighted rejection sampling (the default for `Grammar` and `JsonSchema`).
- ``full scan``: one viability check per vocabulary token (what a dense `logw_next` costs);
  timed on a sample of tokens and scaled to the whole vocabulary.

Run: ``python benchmarks/constraint_samplers.py [--tokens 24] [--only json]``; prints a markdown
table.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import numpy as np
from tqdm.auto import tqdm

from selfsteer.smc import Grammar, JsonSchema, LMContext, Regex, ZeroProbability, load_lm

CASES = [
    ("regex: date", "Give me a date in ISO format.", r"[0-9]{4}-[0-9]{2}-[0-9]{2}"),
    ("regex: sentence", "Write a sentence about cats.", r"[A-Z][a-z ,']+\."),
    ("grammar: arithmetic", "Write an arithmetic expression.",
     'start: expr\nexpr: term (("+" | "-") term)*\nterm: NUMBER | "(" expr ")"\nNUMBER: /[0-9]+/'),
    ("json: person", 'Reply with JSON only, like {"name": "Ann", "age": 30}. Describe a person.',
     {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
      "required": ["name", "age"]}),
]


def spec_for(source, method: str):
    if isinstance(source, dict):
        return JsonSchema(source, method=method)
    if source.startswith("start:"):
        return Grammar(source, method=method)
    return Regex(source, method=method)


async def run_route(lm, prompt: str, spec, n_tokens: int, seed: int, cache: str) -> dict:
    """``cache``: "cold" (clear the state cache first), "warm" (keep it) or "none" (clear each step)."""
    ctx = LMContext(lm, [{"role": "user", "content": prompt}])
    span = ctx.constrain(spec)
    span.constraint.lifted()  # one-off set-up (genlm's vocabulary tables), not a per-token cost
    rng = np.random.default_rng(seed)
    lm_s, constraint_s, cpu_s, n = 0.0, 0.0, 0.0, 0
    while n < n_tokens and not span.done:
        t0 = time.perf_counter()
        await ctx.next_logprobs()
        t1, c1 = time.perf_counter(), time.thread_time()
        if cache == "none" or (cache == "cold" and n == 0):
            span.constraint._masks.clear()
        dist = span.next_token()
        try:
            token, _ = await dist.propose(rng)
        except ZeroProbability:  # a dead end (genlm's JSON prefix check is not exact): a particle would die
            return summary(n, lm_s, constraint_s, cpu_s, span.text + " [dead end]")
        dist.record(token)
        t2, c2 = time.perf_counter(), time.thread_time()
        lm_s, constraint_s, cpu_s, n = lm_s + t1 - t0, constraint_s + t2 - t1, cpu_s + c2 - c1, n + 1
    return summary(n, lm_s, constraint_s, cpu_s, span.text)


def summary(n: int, lm_s: float, constraint_s: float, cpu_s: float, text: str) -> dict:
    per = 1e3 / max(n, 1)
    return {"tokens": n, "lm_ms": lm_s * per, "constraint_ms": constraint_s * per, "cpu_ms": cpu_s * per,
            "text": text}


async def full_scan_ms(lm, spec, sample: int = 2000) -> float:
    """Milliseconds for one viability check of every token, scaled from ``sample`` checks."""
    constraint = spec.bind(lm.vocab)
    ids = constraint.ordinary_ids[:: max(len(constraint.ordinary_ids) // sample, 1)][:sample]
    t0, c0 = time.perf_counter(), time.thread_time()
    for t in ids:
        await constraint.viable([], t)
    scale = 1e3 * len(constraint.ordinary_ids) / len(ids)
    return (time.perf_counter() - t0) * scale, (time.thread_time() - c0) * scale


async def main(n_tokens: int, only: str) -> None:
    lm = load_lm()
    from selfsteer.smc.constraints.token_constraint import token_trie

    t0 = time.perf_counter()
    constraint = Regex("x").bind(lm.vocab)
    t1 = time.perf_counter()
    token_trie(lm.vocab, constraint.ordinary_ids, constraint.data)
    print(f"first spec (imports genlm-control): {t1 - t0:.2f} s; token trie over {lm.vocab.size} "
          f"tokens: {time.perf_counter() - t1:.2f} s")
    rows = []
    jobs = []
    cases = [c for c in CASES if only in c[0]]
    for name, prompt, source in cases:
        if isinstance(source, dict):
            routes = []  # a JSON mask checks every token: see the full-scan row
        elif source.startswith("start:"):
            routes = [("mask (check each candidate)", "mask", "cold")]
        else:
            routes = [("auto (per state)", "auto", "cold"), ("mask (state cache)", "mask", "cold"),
                      ("mask (state cache, warm)", "mask", "warm"), ("mask (walk each step)", "mask", "none")]
        routes.append(("awrs", "awrs", "cold"))
        jobs += [(name, prompt, source, *r) for r in routes]
    for name, prompt, source, route, method, cache in tqdm(jobs, desc="routes"):
        out = await run_route(lm, prompt, spec_for(source, method), n_tokens, 0, cache)
        rows.append((name, route, out))
    for name, _, source in cases:
        wall_ms, cpu_ms = await full_scan_ms(lm, spec_for(source, "mask"))
        rows.append((name, "full scan (scaled)", {"tokens": 1, "lm_ms": float("nan"),
                     "constraint_ms": wall_ms, "cpu_ms": cpu_ms, "text": ""}))
    print("\n| constraint | route | tokens | LM ms/token (wall) | constraint ms/token (wall) "
          "| constraint ms/token (CPU) | text |")
    print("|---|---|---|---|---|---|---|")
    for name, route, out in rows:
        print(f"| {name} | {route} | {out['tokens']} | {out['lm_ms']:.1f} | {out['constraint_ms']:.1f} "
              f"| {out['cpu_ms']:.1f} | {out['text'][:40]!r} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=24)
    parser.add_argument("--only", default="", help="run the cases whose name contains this text")
    args = parser.parse_args()
    asyncio.run(main(args.tokens, args.only))
