"""Per-token cost of constrained token draws on the bundled model, route by route.

For each constraint a single context generates ``--tokens`` tokens under it; before each draw the
LM's next-token distribution is fetched (and timed separately), so the numbers are the
constraint's own cost per token, as wall time and as CPU time of the (single) Python thread,
which a busy shared machine distorts less. Routes:

- ``mask (state cache)``: the exact viable set, cached per regex automaton state (the default
  for `Regex`); the first visit of a state pays one pruned trie walk.
- ``mask (walk each step)``: the same walk with the cache cleared before every draw.
- ``mask (check each candidate)``: for a grammar, one check per token whose bytes all occur in
  the grammar (the default when there are at most 128 such tokens).
- ``awrs``: adaptive weighted rejection sampling (the default for `Grammar` and `JsonSchema`).
- ``full scan``: one viability check per vocabulary token (what a dense `logw_next` costs);
  timed on a sample of tokens and scaled to the whole vocabulary.

Run: ``python benchmarks/constraint_samplers.py [--tokens 24]``; prints a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import numpy as np
from selfsteer.smc import Grammar, JsonSchema, LMContext, Regex, ZeroProbability, load_lm
from tqdm.auto import tqdm

CASES = [
    ("regex: date", "Give me a date in ISO format.", r"[0-9]{4}-[0-9]{2}-[0-9]{2}"),
    ("regex: sentence", "Write a sentence about cats.", r"[A-Z][a-z ,']+\."),
    ("grammar: arithmetic", "Write an arithmetic expression.",
     'start: expr\nexpr: term (("+" | "-") term)*\nterm: NUMBER | "(" expr ")"\nNUMBER: /[0-9]+/'),
    ("json: person", "Describe a person as JSON.",
     {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
      "required": ["name", "age"]}),
]


def spec_for(source, method: str):
    if isinstance(source, dict):
        return JsonSchema(source, method=method)
    if source.startswith("start:"):
        return Grammar(source, method=method)
    return Regex(source, method=method)


async def run_route(lm, prompt: str, spec, n_tokens: int, seed: int, clear_cache: bool) -> dict:
    ctx = LMContext(lm, [{"role": "user", "content": prompt}])
    span = ctx.constrain(spec)
    span.constraint.lifted()  # one-off set-up (genlm's vocabulary tables), not a per-token cost
    rng = np.random.default_rng(seed)
    lm_s, constraint_s, cpu_s, n = 0.0, 0.0, 0.0, 0
    while n < n_tokens and not span.done:
        t0 = time.perf_counter()
        await ctx.next_logprobs()
        t1, c1 = time.perf_counter(), time.thread_time()
        if clear_cache:
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


async def main(n_tokens: int) -> None:
    lm = load_lm()
    from selfsteer.smc.lm.constraints import token_trie

    t0 = time.perf_counter()
    constraint = Regex("x").bind(lm.vocab)
    t1 = time.perf_counter()
    token_trie(lm.vocab, constraint.ordinary_ids, constraint.data)
    print(f"first spec (imports genlm-control): {t1 - t0:.2f} s; token trie over {lm.vocab.size} "
          f"tokens: {time.perf_counter() - t1:.2f} s")
    rows = []
    jobs = []
    for name, prompt, source in CASES:
        if isinstance(source, dict):
            routes = []  # a JSON mask checks every token: see the full-scan row
        elif source.startswith("start:"):
            routes = [("mask (check each candidate)", "mask", False)]
        else:
            routes = [("mask (state cache)", "mask", False), ("mask (walk each step)", "mask", True)]
        routes.append(("awrs", "awrs", False))
        jobs += [(name, prompt, source, *r) for r in routes]
    for name, prompt, source, route, method, clear in tqdm(jobs, desc="routes"):
        out = await run_route(lm, prompt, spec_for(source, method), n_tokens, 0, clear)
        rows.append((name, route, out))
    for name, _, source in CASES:
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
    asyncio.run(main(parser.parse_args().tokens))
