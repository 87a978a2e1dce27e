"""Exact checks of the engine on tiny programs (style.md L6b).

The true normalising constant Z of each program is found by enumerating the ExactLM's
continuations; SMC must satisfy E[exp(log_ml)] = Z (checked within 4 standard errors over many
seeds) and its posterior must approach the exact one as particles grow.
"""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selfsteer.smc import (
    Bernoulli,
    Categorical,
    ExactLM,
    LMContext,
    Model,
    ProgramError,
    smc,
    smc_steer,
)
from selfsteer.smc.resampling import RESAMPLERS
from selfsteer.smc.weights import normalise

LM = ExactLM(("a", "b", " c"), max_len=5, seed=11, concentration=0.7)
PROMPT = LM.prompt_ids("a")
B = LM.vocab.texts.index("b")


class NoB(Model):
    """Every token avoids "b": observe the mask event, then sample the restricted token."""

    def __init__(self, twist_scale: float = 0.0):
        super().__init__()
        self.ctx = LMContext(LM, "a")
        self.twist_scale = twist_scale
        self.no_b = LM.masks.without("b") | LM.masks.eos

    async def step(self):
        await self.observe(self.ctx.mask_dist(self.no_b), True)
        tok = await self.sample(self.ctx.next_token())
        if self.twist_scale:
            self.twist(self.twist_scale * self.ctx.text.count("a"))
        if tok.is_eos:
            self.finish(self.ctx.text)


def exact_no_b() -> tuple[float, dict[str, float]]:
    post: dict[str, float] = {}
    for seq, lp in LM.continuations(PROMPT):
        if B not in seq:
            text = LM.decode(seq)
            post[text] = post.get(text, 0.0) + math.exp(lp)
    z = sum(post.values())
    return z, {k: v / z for k, v in post.items()}


Z_NO_B, POSTERIOR_NO_B = exact_no_b()


def assert_unbiased(estimates: list[float], z: float) -> None:
    est = np.array(estimates)
    se = est.std(ddof=1) / math.sqrt(len(est))
    assert abs(est.mean() - z) <= 4 * se + 1e-12, f"mean {est.mean():.5f} vs Z {z:.5f} (se {se:.5f})"


def test_exact_z_is_a_probability():
    assert 0.05 < Z_NO_B < 0.95  # the constraint bites but leaves mass


@pytest.mark.parametrize("scheme", sorted(RESAMPLERS))
@pytest.mark.parametrize("threshold", [0.0, 0.5, 1.0])
def test_log_ml_unbiased(scheme, threshold):
    runs = [smc(NoB(), 4, ess_threshold=threshold, resampling=scheme, seed=s) for s in range(300)]
    if threshold == 1.0:
        assert sum(r.n_resamples for r in runs) > 300  # resampling really happened
    assert_unbiased([math.exp(r.log_ml) for r in runs], Z_NO_B)


def test_smc_steer_log_ml_unbiased():
    assert_unbiased([math.exp(smc_steer(NoB(), 3, 2, seed=s).log_ml) for s in range(300)], Z_NO_B)


def test_twist_leaves_the_target_unchanged():
    runs = [smc(NoB(twist_scale=1.5), 4, ess_threshold=1.0, seed=s) for s in range(300)]
    assert_unbiased([math.exp(r.log_ml) for r in runs], Z_NO_B)


def total_variation(p: dict, q: dict) -> float:
    return 0.5 * sum(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in set(p) | set(q))


def test_posterior_approaches_exact():
    tv = {n: np.mean([total_variation(smc(NoB(), n, seed=s).posterior, POSTERIOR_NO_B) for s in range(40)])
          for n in (2, 64)}
    assert tv[64] < tv[2] / 2
    assert tv[64] < 0.12


class Proposed(Model):
    """x ~ p through a proposal q, then observe Bernoulli(f(x)): Z = sum_x p(x) f(x)."""

    P = np.array([0.5, 0.3, 0.2])
    Q = np.array([0.1, 0.1, 0.8])
    F = np.array([0.9, 0.2, 0.6])

    async def step(self):
        x = await self.sample(Categorical(self.P), proposal=Categorical(self.Q))
        await self.observe(Bernoulli(self.F[x]), True)
        self.finish(x)


def test_proposals_are_properly_weighted():
    z = float(Proposed.P @ Proposed.F)
    assert_unbiased([math.exp(smc(Proposed(), 3, seed=s).log_ml) for s in range(2000)], z)
    post = smc(Proposed(), 4000, seed=0).posterior
    exact = Proposed.P * Proposed.F / z
    assert total_variation(post, dict(enumerate(exact))) < 0.03


def test_importance_sampling_is_threshold_zero():
    r = smc(NoB(), 8, ess_threshold=0.0, seed=3)
    assert r.n_resamples == 0


def test_seed_reproduces_the_run():
    a, b = smc(NoB(), 8, seed=5, ess_threshold=1.0), smc(NoB(), 8, seed=5, ess_threshold=1.0)
    assert a.outputs == b.outputs and np.array_equal(a.log_weights, b.log_weights)
    c = smc(NoB(), 8, seed=6, ess_threshold=1.0)
    assert (a.outputs, list(a.log_weights)) != (c.outputs, list(c.log_weights))


# ----- engine edge cases (issue 23) ------------------------------------------------------------

def assert_posterior_unbiased(runs, z: float, exact: dict) -> None:
    """E[Z_hat] = Z and E[Z_hat * pi_hat(k)] = Z * pi(k) for every output k, within 4 standard errors."""
    assert_unbiased([math.exp(r.log_ml) for r in runs], z)
    for k, pk in exact.items():
        assert_unbiased([math.exp(r.log_ml) * r.posterior.get(k, 0.0) for r in runs], z * pk)


class FarApart(Model):
    """One branch scores -800: its weight is finite but underflows exp() beside the other's."""

    async def step(self):
        far = await self.sample(Bernoulli(0.5))
        if far:
            self.score(-800.0)
        self.finish(far)


def test_optimal_resampling_counts_what_survives_normalisation():
    from selfsteer.smc.steer import optimal_resample

    indices, new = optimal_resample(np.random.default_rng(0), np.array([0.0, -800.0, -800.0, -800.0]), 2)
    assert list(indices) == [0] and new[0] == pytest.approx(math.log(1 / 4))
    # one weight within float precision of the total, the other positive (found by hypothesis)
    indices, new = optimal_resample(np.random.default_rng(0), np.array([0.0, 37.0]), 1)
    assert len(indices) == 1 and np.isfinite(new).all()


def test_smc_steer_with_weights_beyond_exp_range():
    runs = [smc_steer(FarApart(), 2, 3, seed=s) for s in range(300)]
    assert_posterior_unbiased(runs, 0.5, {False: 1.0})


class DoneAtStart(Model):
    """Finishes in start() with a coin flip; check keeps heads only: Z = 0.3, posterior {True: 1}."""

    async def start(self):
        self.finish(await self.sample(Bernoulli(0.3)))

    async def step(self):
        raise AssertionError("every particle finished in start()")

    def check(self, output):
        return output


def test_check_applies_to_particles_finished_in_start():
    runs = [smc(DoneAtStart(), 3, seed=s) for s in range(300)]
    assert_posterior_unbiased(runs, 0.3, {True: 1.0, False: 0.0})
    assert all(r.check_passed == [r.outputs[i] for i in range(3)] for r in runs[:20])


class Increment(Model):
    def __init__(self, verb: str, value: float):
        super().__init__()
        self.verb, self.value = verb, value

    async def step(self):
        await self.sample(Bernoulli(0.5))
        getattr(self, self.verb)(self.value)  # the offending line
        self.finish(0)


@pytest.mark.parametrize("verb, value", [("score", math.inf), ("score", math.nan), ("twist", math.inf),
                                          ("twist", -math.inf), ("twist", math.nan)])
def test_non_finite_increments_are_errors_naming_the_line(verb, value):
    with pytest.raises(ProgramError, match=r"test_smc_exact.py:\d+: getattr\(self, self.verb\)\(self.value\)"):
        smc(Increment(verb, value), 4, seed=0)


def test_score_minus_inf_still_kills_only_that_particle():
    r = smc(Increment("score", -math.inf), 4, seed=0)
    assert r.status == "all_dead" and r.posterior == {}


@pytest.mark.parametrize("scheme", sorted(RESAMPLERS))
@pytest.mark.parametrize("weights", [[0.5, math.nan, 0.5], [0.5, math.inf, 0.5], [0.0, 0.0, 0.0], [1.5, -0.5, 0.0]])
def test_resamplers_reject_invalid_weights(scheme, weights):
    with pytest.raises(ValueError, match="finite, non-negative"):
        RESAMPLERS[scheme](np.random.default_rng(0), np.array(weights), 3)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.floats(-2000, 50), st.just(-math.inf)), min_size=1, max_size=12),
       st.integers(1, 6), st.integers(0, 2**32 - 1))
def test_optimal_resampling_handles_any_finite_spread(log_w, n, seed):
    """No crash for any weights; at most n distinct survivors, each with positive normalised weight."""
    from selfsteer.smc.steer import optimal_resample

    log_w = np.array(log_w)
    indices, new = optimal_resample(np.random.default_rng(seed), log_w, n)
    assert len(indices) <= n and len(set(indices.tolist())) == len(indices)
    assert np.all(np.isfinite(new)) and np.all(normalise(log_w)[indices] > 0)
    if np.isfinite(log_w).any():
        assert len(indices) >= 1
