import asyncio
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selfsteer.smc import Bernoulli, Categorical, Geometric, ZeroProbability
from selfsteer.smc.distributions import sample_log_probs


def run(coro):
    return asyncio.run(coro)


@given(p=st.floats(0, 1))
def test_bernoulli_log_prob(p):
    d = Bernoulli(p)
    total = sum(math.exp(run(d.log_prob(v))) for v in (True, False))
    assert abs(total - 1) < 1e-12


def test_bernoulli_frequency_and_errors():
    rng = np.random.default_rng(0)
    d = Bernoulli(0.3)
    xs = [run(d.sample(rng))[0] for _ in range(4000)]
    assert abs(np.mean(xs) - 0.3) < 4 * math.sqrt(0.3 * 0.7 / 4000)
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="0 <= p <= 1"):
            Bernoulli(bad)


def test_categorical_arbitrary_values_merge_duplicates():
    d = Categorical([1, 2, 1], values=["x", "y", "x"])
    assert math.isclose(math.exp(run(d.log_prob("x"))), 0.5)
    assert run(d.log_prob("zzz")) == -math.inf
    rng = np.random.default_rng(1)
    xs = [run(d.sample(rng))[0] for _ in range(4000)]
    assert abs(xs.count("y") / 4000 - 0.5) < 0.04


def test_categorical_logits_equal_probs():
    p = np.array([0.1, 0.6, 0.3])
    a, b = Categorical(p), Categorical(logits=np.log(p) + 7)
    for v in range(3):
        assert math.isclose(run(a.log_prob(v)), run(b.log_prob(v)), rel_tol=1e-12)


@pytest.mark.parametrize(
    "kwargs, msg",
    [({}, "exactly one"), ({"probs": [1], "logits": [0]}, "exactly one"), ({"probs": [-1, 2]}, ">= 0"),
     ({"probs": []}, "non-empty"), ({"logits": [float("nan")]}, "NaN"), ({"probs": [1, 2], "values": [1]}, "values")],
)
def test_categorical_errors(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        Categorical(**kwargs)


def test_zero_mass_raises_zero_probability():
    d = Categorical([0.0, 0.0])
    with pytest.raises(ZeroProbability):
        run(d.sample(np.random.default_rng(0)))


@given(p=st.floats(0.05, 1))
@settings(deadline=None, max_examples=30)
def test_geometric_sums_to_one(p):
    d = Geometric(p)

    async def total():
        return sum([math.exp(await d.log_prob(k)) for k in range(1000)])

    assert abs(run(total()) - 1) < 1e-6
    assert run(d.log_prob(-1)) == -math.inf and run(d.log_prob(1.5)) == -math.inf


def test_sample_log_probs_never_picks_impossible():
    lp = np.array([-np.inf, 0.0, -np.inf, -50.0, -np.inf])
    rng = np.random.default_rng(0)
    assert {sample_log_probs(rng, lp) for _ in range(500)} <= {1, 3}
