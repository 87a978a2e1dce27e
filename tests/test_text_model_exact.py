"""TextModel's helpers are properly weighted to the prior, with and without a separate proposal.

Prior prompt "a", proposal prompt "b": the proposal is a different distribution, so any missing
weight correction shows up as a biased evidence estimate. Exact Z by enumeration.
"""

import math

import numpy as np
import pytest

from selfsteer.smc import ExactLM, TextModel, smc

LM = ExactLM(("a", "b", " c"), max_len=5, seed=7, concentration=0.8)
PRIOR = LM.prompt_ids("a")
A, B, C, EOS = 0, 1, 2, LM.vocab.eos_id


def continuations():
    return list(LM.continuations(PRIOR))


def z_of(predicate) -> float:
    return sum(math.exp(lp) for seq, lp in continuations() if predicate(seq))


def assert_unbiased(program, z: float, runs: int = 300, n: int = 4):
    est = np.array([math.exp(smc(program(), n, seed=s, ess_threshold=0.5).log_ml) for s in range(runs)])
    se = est.std(ddof=1) / math.sqrt(runs)
    assert abs(est.mean() - z) <= 4 * se + 1e-12, f"mean {est.mean():.5f} vs Z {z:.5f} (se {se:.5f})"


def make(cls, proposal):
    return lambda: cls(LM, "a", proposal)


class MaskedTokens(TextModel):
    async def step(self):
        tok = await self.next_token(mask=self.lm.masks.without("b") | self.lm.masks.eos)
        if tok.is_eos:
            self.finish(self.text)


class Chunked(TextModel):
    async def step(self):
        await self.extend(max_tokens=2, allow_eos=False)
        await self.end()


class Forced(TextModel):
    async def step(self):
        await self.extend_with("b")
        await self.next_token(mask=self.lm.masks.eos)
        self.finish(self.text)


class OneWord(TextModel):
    async def step(self):
        self.word = await self.next_word()
        await self.end()


class Hinted(TextModel):
    """Hints once, then writes at most two tokens: the hinted proposal's longer prompt stays
    within the ExactLM's context length, so it covers the prior's support."""

    HINT_TEMPLATE = "{hint}"  # the ExactLM only tokenises its three tokens

    async def step(self):
        if not self.hints:
            self.hint("b")
        tok = await self.next_token(mask=~self.lm.masks.containing("b"))
        if tok.is_eos:
            self.finish(self.text)
        elif self.n_tokens == 2:
            await self.end()


CASES = {
    "masked tokens": (MaskedTokens, lambda s: B not in s),
    "chunk without eos, then end": (Chunked, lambda s: len(s) == 3 and EOS not in s[:2]),
    "forced text": (Forced, lambda s: s == (B, EOS)),
    "one word then end": (OneWord, lambda s: len(s) >= 2 and all(t in (A, B) for t in s[1:-1])),
    "hint": (Hinted, lambda s: B not in s and len(s) <= 3),
}


@pytest.mark.parametrize("proposal", [None, "b"], ids=["own proposal", "separate proposal"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_helpers_are_properly_weighted(case, proposal):
    cls, predicate = CASES[case]
    z = z_of(predicate)
    assert 0 < z < 1
    assert_unbiased(make(cls, proposal), z)


def test_max_tokens_kills_long_particles():
    class Long(TextModel):
        async def step(self):
            await self.next_token(mask=~self.lm.masks.eos)

    r = smc(Long(LM, "a", max_tokens=2), 4, seed=0)
    assert r.status == "all_dead"
