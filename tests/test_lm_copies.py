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
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tiny_lm import tiny_lm

from selfsteer.smc import LMContext

TOL = 2e-4
LM = tiny_lm(seed=3)

# an operation: ("copy", i) appends a copy of context i; ("feed", picks, tokens) appends one token
# to each picked context and reads all of their next log-probs in one batch; ("chunk", picks, seed)
# samples a short chunk for each picked context together.
ops = st.one_of(
    st.tuples(st.just("copy"), st.integers(0, 7)),
    st.tuples(st.just("feed"), st.lists(st.integers(0, 7), min_size=1, max_size=4, unique=True),
              st.lists(st.integers(100, 5000), min_size=4, max_size=4)),
    st.tuples(st.just("chunk"), st.lists(st.integers(0, 7), min_size=1, max_size=3, unique=True),
              st.integers(0, 2**16)),
)


def fresh_next_logprobs(tokens: list[int]) -> np.ndarray:
    with torch.inference_mode():
        logits = LM.model(torch.tensor([tokens])).logits[0, -1]
    return torch.log_softmax(logits.float(), -1).numpy()


async def run(program) -> float:
    ctxs = [LMContext(LM, "The lighthouse")]
    await ctxs[0].next_logprobs()
    worst = 0.0
    for op in program:
        if op[0] == "copy":
            ctxs.append(copy.deepcopy(ctxs[op[1] % len(ctxs)]))
            continue
        picked = [ctxs[i % len(ctxs)] for i in dict.fromkeys(i % len(ctxs) for i in op[1])]
        if op[0] == "feed":
            for c, t in zip(picked, op[2], strict=False):
                c.append_token(t)
        else:
            dists = [c.chunk(max_tokens=3, allow_eos=False) for c in picked]
            draws = await asyncio.gather(*(d.sample(np.random.default_rng(op[2] + k)) for k, d in enumerate(dists)))
            for d, (chunk, _) in zip(dists, draws, strict=True):
                d.record(chunk)
        lps = await asyncio.gather(*(c.next_logprobs() for c in picked))
        for c, lp in zip(picked, lps, strict=True):
            worst = max(worst, float(np.abs(lp - fresh_next_logprobs(c.tokens)).max()))
    for c in ctxs:  # every context, read last, still sees exactly its own tokens
        lp = await c.next_logprobs()
        worst = max(worst, float(np.abs(lp - fresh_next_logprobs(c.tokens)).max()))
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
        return max(float(np.abs(lp - fresh_next_logprobs(c.tokens)).max()) for c, lp in zip(particles, lps, strict=True))

    assert asyncio.run(scenario()) < TOL
