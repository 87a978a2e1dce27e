"""Token-level draws on the backend (`NextToken` before the context has host log-probabilities).

On the transformers backend (tiny random Llama, real tokenizer) a masked next token is drawn by
the fused sampling loop on the model's device. These tests hold it to the host's arithmetic: the
weight it returns is the host's ``log p(mask)``, its tokens follow the restricted distribution,
and along whole SMC runs with resampling at every step each increment equals the mass a fresh
context computes for that particle's own prefix.
"""

from __future__ import annotations

import asyncio
import copy
import math

import numpy as np
import pytest
from tiny_lm import tiny_lm

from selfsteer.smc import LMContext, TextModel, TokenMask, smc
from selfsteer.smc.distributions import ZeroProbability
from selfsteer.smc.lm.vocab import log_mass

PROMPT = "Write one short sentence."


@pytest.fixture(scope="module")
def lm():
    return tiny_lm(seed=3)


def test_backend_draws_match_the_host_distribution_and_mass(lm):
    async def go():
        fresh = LMContext(lm, PROMPT, temperature=0.8)
        lp = await LMContext(lm, PROMPT, temperature=0.8).next_logprobs()
        top = np.argsort(lp)[-6:]
        mask = TokenMask("top six", np.isin(np.arange(lm.vocab.size), top[::2]))  # three of the six
        copies = [copy.deepcopy(fresh) for _ in range(600)]
        draws = await asyncio.gather(*(c.next_token(mask).propose(np.random.default_rng(i)) for i, c in enumerate(copies)))
        return lp, mask, draws

    lp, mask, draws = asyncio.run(go())
    want_mass = log_mass(lp, mask)
    assert all(tok.id in mask and math.isclose(w, want_mass, abs_tol=1e-4) for tok, w in draws)
    p = np.exp(lp[mask.ids] - want_mass)
    counts = np.array([sum(tok.id == i for tok, _ in draws) for i in mask.ids])
    assert np.abs(counts / len(draws) - p).max() < 0.06


class MaskedSteps(TextModel):
    """Eight tokens without "e"; records each step's weight increment."""

    def __init__(self, lm, temperature: float):
        super().__init__(lm, PROMPT, max_tokens=8, temperature=temperature)
        self.mask = lm.masks.without("eE")
        self.increments: list[float] = []

    async def step(self):
        before = self.log_weight
        await self.next_token(mask=self.mask)
        self.increments.append(self.log_weight - before)
        if self.n_tokens == 8:
            self.finish(self.text)


async def fresh_masses(lm, prompt: list[int], ids: list[int], mask: TokenMask, temperature: float) -> list[float]:
    ctx = LMContext(lm, prompt, temperature=temperature)
    out = []
    for t in ids:
        out.append(log_mass(await ctx.next_logprobs(), mask))
        ctx.append_token(t)
    return out


@pytest.mark.parametrize("temperature", [1.0, 0.6])
def test_increments_along_resampled_runs_are_the_fresh_masses(lm, temperature):
    result = smc(MaskedSteps(lm, temperature), 6, seed=11, ess_threshold=1.0)
    assert result.n_resamples > 0
    for p in result.particles:
        ids = p.prior.generated_ids
        assert len(ids) == 8 and "e" not in p.text.lower()
        prompt = p.prior.tokens[: p.prior.n_prompt]  # the chat-templated prompt
        want = asyncio.run(fresh_masses(lm, prompt, ids, p.mask, temperature))
        np.testing.assert_allclose(p.increments, want, atol=2e-4)


def test_a_mask_without_mass_raises_zero_probability_on_both_paths(lm):
    empty = TokenMask("nothing", np.zeros(lm.vocab.size, dtype=bool))

    async def draw(fetch_first: bool):
        ctx = LMContext(lm, PROMPT)
        if fetch_first:  # the host has the distribution: the draw happens there
            await ctx.next_logprobs()
        return await ctx.next_token(empty).propose(np.random.default_rng(0))

    for fetch_first in (False, True):
        with pytest.raises(ZeroProbability):
            asyncio.run(draw(fetch_first))


def test_one_batch_mixing_masks_and_no_mask_weights_each_row_by_its_own_mask(lm):
    no_e, short = lm.masks.without("eE"), lm.masks.length(max_chars=2)
    masks = [no_e, None, short, no_e, None]

    async def go():
        ctx = LMContext(lm, PROMPT)
        lp = await LMContext(lm, PROMPT).next_logprobs()
        copies = [copy.deepcopy(ctx) for _ in masks]
        draws = await asyncio.gather(*(c.next_token(m).propose(np.random.default_rng(i))
                                       for i, (c, m) in enumerate(zip(copies, masks, strict=True))))
        return lp, draws

    lp, draws = asyncio.run(go())
    for mask, (tok, weight) in zip(masks, draws, strict=True):
        if mask is None:
            assert weight == 0.0
        else:
            assert tok.id in mask and math.isclose(weight, log_mass(lp, mask), abs_tol=1e-4)


def test_masks_that_are_not_token_masks_of_this_vocabulary_get_clear_errors(lm):
    ctx = LMContext(lm, PROMPT)
    for use in (ctx.next_token, ctx.mask_dist, ctx.restrict):
        with pytest.raises(TypeError, match="lm.masks"):
            use([1, 2, 3])
        with pytest.raises(ValueError, match="vocabulary has"):
            use(TokenMask("short", np.ones(10, dtype=bool)))


def test_a_complement_written_in_step_is_one_mask_uploaded_once():
    """``~m`` is made once per mask: a program that writes ``~lm.masks.eos`` in every step hands
    the backend the same array every time, so its device copy is built and cached once."""
    lm = tiny_lm(seed=9)
    eos = lm.masks.eos
    assert ~eos is ~eos and ~~eos is eos
    assert np.array_equal((~eos).array, ~eos.array) and (~eos).name == f"~{eos.name}"

    class NoEos(TextModel):
        def __init__(self):
            super().__init__(lm, PROMPT, max_tokens=5)

        async def step(self):
            await self.next_token(mask=~self.lm.masks.eos)
            if self.n_tokens >= self.max_tokens:
                self.finish(self.text)

    for seed in (0, 1):
        result = smc(NoEos(), 6, seed=seed)
        assert all(p.n_tokens == 5 for p in result.particles)
    cached = [array for array, _ in lm._log_masks.values()]
    assert len(cached) == 1 and cached[0] is (~eos).excluded
