"""Exact checks of the engine on tiny programs (style.md L6b).

The true normalising constant Z of each program is found by enumerating the ExactLM's
continuations; SMC must satisfy E[exp(log_ml)] = Z (checked within 4 standard errors over many
seeds) and its posterior must approach the exact one as particles grow.
"""

import math

import numpy as np
import pytest

from selfsteer.smc import Bernoulli, Categorical, ExactLM, LMContext, Model, smc, smc_steer
from selfsteer.smc.resampling import RESAMPLERS

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
