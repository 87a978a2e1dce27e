"""Copies of contexts on the transformers backend share KV rows copy-on-write.

Property: under any interleaving of copying contexts, feeding any subset of them together (one
batch), and sampling chunks, every context's next-token log-probs equal a fresh forward over its
own tokens. The hard cases are copies whose original (or another copy) extends the shared row in
place first: the later reader must see only its own tokens. Runs on the tiny random Llama
(`tiny_lm`), whose forward takes milliseconds; float32, so cache reuse agrees to 2e-4.
"""

import asyncio
import copy

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tiny_lm import tiny_lm, uncached_logprobs

from selfsteer.smc import LMContext

TOL = 2e-4
LM = tiny_lm(seed=3)

PROMPTS = (("The lighthouse", 1.0), ("The lighthouse keeper", 0.7))  # the second extends the first's cached prefix

# An operation on the pool of contexts (indices wrap around the pool):
#   ("copy", i)                 append a copy of context i to the pool;
#   ("feed", picks, tokens)     in one batch, each picked context appends tokens[k % 4] and reads its next log-probs;
#   ("append", picks, tokens)   in one batch, picked context k forces the first 1 + k % 3 tokens (multi-token feeds, padded);
#   ("chunk", picks, seed)      in one batch, the first picked context feeds a token while the rest sample 3-token chunks.
tokens = st.lists(st.integers(100, 5000), min_size=4, max_size=4)
picks = st.lists(st.integers(0, 7), min_size=1, max_size=4, unique=True)
ops = st.one_of(
    st.tuples(st.just("copy"), st.integers(0, 7)),
    st.tuples(st.just("feed"), picks, tokens),
    st.tuples(st.just("append"), picks, tokens),
    st.tuples(st.just("chunk"), picks, st.integers(0, 2**16)),
)


def fresh_logprobs(ctx: LMContext) -> np.ndarray:
    return uncached_logprobs(LM, ctx)


def next_error(ctx: LMContext, lp: np.ndarray) -> float:
    return float(np.abs(lp - fresh_logprobs(ctx)[-1]).max())


async def apply(op, ctxs: list[LMContext]) -> float:
    """Run one operation; the largest log-prob error against fresh forwards it produced."""
    if op[0] == "copy":
        ctxs.append(copy.deepcopy(ctxs[op[1] % len(ctxs)]))
        return 0.0
    picked = [ctxs[i] for i in dict.fromkeys(i % len(ctxs) for i in op[1])]
    if op[0] == "append":
        forced = [op[2][: 1 + k % 3] for k in range(len(picked))]
        got = await asyncio.gather(*(c.append(ids) for c, ids in zip(picked, forced, strict=True)))
        worst = 0.0
        for c, ids, lps in zip(picked, forced, got, strict=True):
            ref = fresh_logprobs(c)[-len(ids) - 1 : -1]
            worst = max(worst, float(np.abs(ref[np.arange(len(ids)), ids] - lps).max()))
        return worst
    if op[0] == "feed":
        for k, c in enumerate(picked):
            c.append_token(op[2][k % 4])
        jobs = [c.next_logprobs() for c in picked]
    else:
        picked[0].append_token(op[2] % 4000 + 100)
        dists = [c.chunk(max_tokens=3, allow_eos=False) for c in picked[1:]]
        jobs = [picked[0].next_logprobs(), *(d.sample(np.random.default_rng(op[2] + k)) for k, d in enumerate(dists))]
    out = await asyncio.gather(*jobs)
    if op[0] == "chunk":
        for d, (chunk, _) in zip(dists, out[1:], strict=True):
            d.record(chunk)
        return next_error(picked[0], out[0])
    return max(next_error(c, lp) for c, lp in zip(picked, out, strict=True))


async def run(program) -> float:
    ctxs = [LMContext(LM, p, temperature=t) for p, t in PROMPTS]
    await asyncio.gather(*(c.next_logprobs() for c in ctxs))
    worst = 0.0
    for op in program:
        worst = max(worst, await apply(op, ctxs))
    for c in ctxs:  # every context, read last, still sees exactly its own tokens
        worst = max(worst, next_error(c, await c.next_logprobs()))
    return worst


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ops, min_size=1, max_size=10))
def test_copies_see_only_their_own_tokens(program):
    assert asyncio.run(run(program)) < TOL


def test_a_copy_is_untouched_when_its_original_is_extended_in_place():
    program = [("feed", [0], [812, 0, 0, 0]), ("copy", 0), ("feed", [0], [1234, 0, 0, 0]), ("feed", [1], [4321, 0, 0, 0])]
    assert asyncio.run(run(program)) < TOL


def test_originals_are_untouched_when_their_copies_look_ahead_together():
    """The lookahead pattern: every particle scores a continuation on a copy, in one batch, then
    the particles go on from where they were."""

    async def scenario() -> float:
        particles = [LMContext(LM, "The lighthouse") for _ in range(3)]
        await asyncio.gather(*(c.next_logprobs() for c in particles))
        for k, c in enumerate(particles):  # one batch: the particles own the rows of one block
            c.append_token(300 + k)
        await asyncio.gather(*(c.next_logprobs() for c in particles))
        lookahead = [copy.deepcopy(c) for c in particles]
        await asyncio.gather(*(c.append([700, 701]) for c in lookahead))
        for k, c in enumerate(particles):
            c.append_token(900 + k)
        lps = await asyncio.gather(*(c.next_logprobs() for c in particles))
        return max(next_error(c, lp) for c, lp in zip(particles, lps, strict=True))

    assert asyncio.run(scenario()) < TOL
