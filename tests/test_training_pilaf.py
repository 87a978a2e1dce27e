"""PILAF: the interpolated policies, their sampler through the engine, pair mixing and the DPO loss."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from tiny_lm import tiny_lm

from selfsteer.smc.lm.transformers.backend import TransformersLM
from selfsteer.training.objectives.pilaf import InterpolatedLM, dpo_loss, interpolate, pair_kinds
from selfsteer.training.questions import Question
from selfsteer.training.rollout import qa_prompt, sample_groups

pytestmark = pytest.mark.usefixtures("one_thread")


def log_softmax(x):
    x = np.asarray(x, dtype=np.float64)
    return x - np.logaddexp.reduce(x, axis=-1, keepdims=True)


logits_st = arrays(np.float64, st.tuples(st.integers(1, 3), st.integers(2, 12)), elements=st.floats(-8, 8, width=32))


@settings(max_examples=60, deadline=None)
@given(logits_st, logits_st, st.floats(0, 1))
def test_interpolated_policies(policy_logits, ref_logits, beta):
    if policy_logits.shape != ref_logits.shape:
        ref_logits = np.resize(ref_logits, policy_logits.shape)
    lp, lr = log_softmax(policy_logits), log_softmax(ref_logits)
    plus, minus = interpolate(lp, lr, beta, +1), interpolate(lp, lr, beta, -1)
    for dist in (plus, minus):
        assert np.allclose(np.exp(dist).sum(axis=-1), 1.0)
    # log π+ + log π- - 2 log π_θ is constant across the vocabulary at each position
    gap = plus + minus - 2 * lp
    assert np.allclose(gap, gap[..., :1], atol=1e-6)
    # π+ / π_θ grows with log π_θ - log π_ref: it raises the tokens the policy prefers over the reference
    ratio = plus - lp
    order = np.argsort(lp - lr, axis=-1)
    assert np.all(np.diff(np.take_along_axis(ratio, order, -1), axis=-1) >= -1e-6)


def test_beta_zero_is_the_policy():
    lp = log_softmax([1.0, 2.0, -1.0])
    lr = log_softmax([0.0, -3.0, 2.0])
    assert np.allclose(interpolate(lp, lr, 0.0, +1), lp) and np.allclose(interpolate(lp, lr, 0.0, -1), lp)


def test_interpolated_lm_samples_through_the_engine():
    policy, reference = tiny_lm(0), tiny_lm(1)
    q = [Question("a", "What is 1 + 2?", "3")]
    kw = dict(group_size=4, max_tokens=5, temperature=1.0, seed=2, prompt=qa_prompt)
    plain = sample_groups(policy, q, **kw)
    same = sample_groups(InterpolatedLM(policy, reference, beta=0.0, sign=1), q, **kw)
    assert [s.token_ids for s in plain[0]] == [s.token_ids for s in same[0]]
    assert all(np.allclose(a.token_logprobs, b.token_logprobs, atol=1e-5) for a, b in zip(plain[0], same[0], strict=True))
    plus = InterpolatedLM(policy, reference, beta=0.5, sign=1)

    async def next_dists():
        ids = policy.prompt_ids("Q: hi\nA:")
        a = await policy.feed(None, ids)
        b = await reference.feed(None, ids)
        c = await plus.feed(None, ids)
        return a.next_logprobs, b.next_logprobs, c.next_logprobs, c.token_logprobs, a.token_logprobs

    lp, lr, mixed, mixed_tokens, policy_tokens = asyncio.run(next_dists())
    assert np.allclose(mixed, interpolate(lp, lr, 0.5, +1), atol=1e-5)
    assert len(mixed_tokens) == len(policy_tokens)  # per-token log-probs of a multi-token feed are served too
    assert isinstance(reference, TransformersLM)


def test_half_of_the_pairs_are_interpolated():
    kinds = pair_kinds(np.random.default_rng(0), 4000, 0.5)
    assert abs(kinds.sum() - kinds.size / 2) < 4 * np.sqrt(kinds.size / 4)  # within 4 binomial s.d.
    assert not pair_kinds(np.random.default_rng(0), 100, 0.0).any()


def test_dpo_loss():
    zero = torch.zeros(3)
    assert torch.allclose(dpo_loss(zero, zero, zero, zero, 0.1), torch.full((3,), np.log(2.0), dtype=torch.float32))
    chosen_up = dpo_loss(torch.tensor([1.0]), torch.tensor([0.0]), torch.zeros(1), torch.zeros(1), 1.0)
    assert chosen_up.item() == pytest.approx(np.log1p(np.exp(-1.0)))
