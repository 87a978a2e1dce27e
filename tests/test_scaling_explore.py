"""Outcome-based exploration: the bonuses, bit-identity at weight 0, and an unchanged target.

`Ponder` thinks for a random number of steps, reveals an answer x ~ P (proposed uniformly, so
weights differ and resampling happens), then two steps later observes Bernoulli(F[x]) and finishes.
Its normalising constant is Z = sum_x P(x) F(x) and its posterior over answers P F / Z, exactly.
"""

import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from selfsteer.smc import Bernoulli, Categorical, Model, smc
from selfsteer.smc.scaling import Exploration, distinct_answers, final_answers
from selfsteer.smc.scaling.explore import batch_penalty, ucb_bonus

P = np.array([0.6, 0.2, 0.1, 0.05, 0.05])
Q = np.full(5, 0.2)
F = np.array([0.5, 0.9, 0.8, 0.7, 0.6])
Z = float(P @ F)
POSTERIOR = dict(enumerate(P * F / Z))


class Ponder(Model):
    def __init__(self):
        super().__init__()
        self.answer, self.after = None, 0

    async def step(self):
        if self.answer is None:
            if await self.sample(Bernoulli(0.5)):
                self.answer = await self.sample(Categorical(P), proposal=Categorical(Q))
            return
        self.after += 1
        if self.after == 2:
            await self.observe(Bernoulli(F[self.answer]), True)
            self.finish(self.answer)


@given(st.integers(min_value=0, max_value=10_000))
def test_ucb_bonus_is_in_unit_interval_and_non_increasing(count):
    assert 0.0 < ucb_bonus(count) <= 1.0
    assert ucb_bonus(count + 1) <= ucb_bonus(count)
    assert (ucb_bonus(count) == 1.0) == (count <= 1)


@given(st.lists(st.one_of(st.none(), st.integers(0, 3)), min_size=1, max_size=16))
def test_batch_penalty_is_zero_iff_unique_and_counts_copies(answers):
    pen = batch_penalty(answers)
    n = len(answers)
    for a, p in zip(answers, pen, strict=True):
        k = answers.count(a)
        assert p == (0.0 if a is None else -(k - 1) / n)
        assert (p == 0.0) == (a is None or k == 1)
        assert p > -1.0


def test_ucb_con_is_negative_only_past_one_over_b0_squared():
    policy = Exploration(1.0, b0=0.5, batch_weight=0.0)
    counts = {n: ucb_bonus(n) - policy.b0 for n in range(1, 10)}
    assert [n for n, b in counts.items() if b < 0] == [5, 6, 7, 8, 9]


def test_weight_zero_reproduces_plain_smc_bit_for_bit():
    for seed in range(20):
        plain = smc(Ponder(), 8, ess_threshold=1.0, seed=seed)
        zero = smc(Ponder(), 8, ess_threshold=1.0, seed=seed, reweight=Exploration(0.0))
        assert plain.outputs == zero.outputs
        assert np.array_equal(plain.log_weights, zero.log_weights)
        assert plain.log_ml == zero.log_ml and plain.ess_history == zero.ess_history
        assert plain.n_resamples == zero.n_resamples


def test_exploration_changes_the_run_but_not_the_evidence():
    runs = [smc(Ponder(), 4, ess_threshold=1.0, seed=s, reweight=Exploration(2.0)) for s in range(1000)]
    plain = [smc(Ponder(), 4, ess_threshold=1.0, seed=s) for s in range(50)]
    assert [r.outputs for r in runs[:50]] != [r.outputs for r in plain]
    est = np.array([math.exp(r.log_ml) for r in runs])
    se = est.std(ddof=1) / math.sqrt(len(est))
    assert abs(est.mean() - Z) <= 4 * se, (est.mean(), Z, se)


def test_exploration_keeps_the_posterior_and_every_answer_in_support():
    result = smc(Ponder(), 2000, ess_threshold=1.0, seed=0, reweight=Exploration())
    tv = 0.5 * sum(abs(result.posterior.get(k, 0.0) - v) for k, v in POSTERIOR.items())
    assert tv < 0.06
    assert set(result.posterior) == set(POSTERIOR)


def test_exploration_keeps_more_distinct_answers():
    def mean_distinct(weight):
        return np.mean([distinct_answers(final_answers(smc(Ponder(), 8, ess_threshold=1.0, seed=s,
                                                           reweight=Exploration(weight)))) for s in range(200)])

    plain, explored = mean_distinct(0.0), mean_distinct(1.0)
    assert explored > plain + 0.2, (plain, explored)


def test_bad_policies_are_rejected():
    import pytest

    with pytest.raises(ValueError, match="finite log-potential"):
        smc(Ponder(), 4, seed=0, reweight=lambda particles, step: [math.inf] * len(particles))
    with pytest.raises(ValueError, match=">= 0"):
        Exploration(-1.0)
