"""Rollouts through the SMC engine on a tiny random Llama: what is recorded, and that the sampler's
log-probabilities agree with the teacher-forced ones the loss uses."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_lm import tiny_lm

from selfsteer.training import wrap_policy
from selfsteer.training.questions import Question
from selfsteer.training.rollout import Rollout, qa_prompt, sample_groups

QUESTIONS = [Question("a", "What is 1 + 2?", "3"), Question("b", "What is 2 + 2?", "4")]


pytestmark = pytest.mark.usefixtures("one_thread")


class Structured(Rollout):
    """Forced text, a free chunk, a digit restricted by a mask, more forced text, another chunk."""

    async def step(self):
        digit = self.ctx.lm.masks.where("single_digit", lambda t: len(t) == 1 and t.isdigit())
        await self.force(" Answer:")
        await self.generate(max_tokens=3)
        await self.choose(digit)
        await self.force(" ok")
        await self.generate(max_tokens=2)
        self.finish(self.text)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_sampler_logprobs_match_teacher_forcing(temperature):
    lm = tiny_lm()
    policy = wrap_policy(lm, temperature=temperature)
    groups = sample_groups(lm, QUESTIONS, group_size=3, max_tokens=6, temperature=temperature, seed=1, prompt=qa_prompt)
    samples = [s for g in groups for s in g]
    assert [len(g) for g in groups] == [3, 3]
    with torch.no_grad():
        forced = policy.logprobs(samples)
    for i, s in enumerate(samples):
        assert s.sampled.all() and len(s.token_ids) == len(s.token_logprobs) <= 6
        assert s.prompt_ids == tuple(lm.prompt_ids(qa_prompt(s.question, 6)))
        assert np.allclose(forced[i, : len(s.token_ids)].numpy(), s.token_logprobs, atol=1e-4)


def test_forced_and_restricted_tokens_are_recorded_and_renormalised():
    lm = tiny_lm()
    policy = wrap_policy(lm)
    groups = sample_groups(lm, QUESTIONS[:1], group_size=4, max_tokens=10, temperature=1.0, seed=3,
                           program=Structured, prompt=qa_prompt)
    for s in groups[0]:
        n_forced = len(lm.encode(" Answer:")), len(lm.encode(" ok"))
        assert not s.sampled[: n_forced[0]].any()
        assert s.n_sampled == 3 + 1 + 2
        (pos, mask), = s.restrictions.items()
        assert s.sampled[pos] and s.token_ids[pos] in mask
        assert lm.decode([s.token_ids[pos]]).isdigit()
        with torch.no_grad():
            forced = policy.logprobs([s])[0, : len(s.token_ids)].numpy()
        # every recorded log-probability (forced ones too) matches the teacher-forced pass;
        # the restricted draw is renormalised over the digits on both sides
        assert np.allclose(forced, s.token_logprobs, atol=1e-4)
        full = lm.model(input_ids=torch.tensor([list(s.prompt_ids) + list(s.token_ids[:pos])])).logits[0, -1]
        unrestricted = torch.log_softmax(full.float(), -1)[s.token_ids[pos]].item()
        assert s.token_logprobs[pos] > unrestricted  # renormalising over a subset raises the probability


def test_truncation_closes_the_completion():
    class ForceAfter(Rollout):
        async def step(self):
            await self.generate()
            await self.force(" tail")
            self.finish(self.text)

    lm = tiny_lm()
    groups = sample_groups(lm, QUESTIONS[:1], group_size=4, max_tokens=3, temperature=1.0, seed=0,
                           program=ForceAfter, prompt=qa_prompt)
    for s in groups[0]:
        ended = bool(s.token_ids) and s.token_ids[-1] in lm.vocab.eos_ids
        assert s.truncated == (not ended)
        if s.truncated:
            assert s.n_sampled == 3 and len(s.token_ids) == 3 and not s.text.endswith(" tail")


def test_a_seed_fixes_the_groups():
    lm = tiny_lm()
    kwargs = dict(group_size=3, max_tokens=5, temperature=1.0, prompt=qa_prompt)
    a = sample_groups(lm, QUESTIONS, seed=5, **kwargs)
    b = sample_groups(lm, QUESTIONS, seed=5, **kwargs)
    c = sample_groups(lm, QUESTIONS, seed=6, **kwargs)
    ids = lambda groups: [[s.token_ids for s in g] for g in groups]  # noqa: E731
    assert ids(a) == ids(b)
    assert ids(a) != ids(c)
