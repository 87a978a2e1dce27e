"""The per-particle kernels on vocabulary rows: two-level inverse-CDF sampling, mask masses and
restriction, and float32 log-sum-exp. Each is checked against the plain float64 computation."""

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from selfsteer.smc.distributions import BLOCK, sample_log_probs, sample_weights
from selfsteer.smc.lm.vocab import TokenMask, log_indicator, log_mass, restrict_log_probs
from selfsteer.smc.weights import logsumexp

SIZES = [1, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK + 17]


def exact_logsumexp(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=np.float64)
    m = np.max(x)
    return -math.inf if m == -math.inf else float(m + np.log(np.sum(np.exp(x - m))))


@settings(max_examples=60, deadline=None)
@given(
    size=st.sampled_from(SIZES),
    data=st.data(),
)
def test_sample_weights_only_picks_entries_with_mass(size, data):
    weights = data.draw(arrays(np.float32, size, elements=st.sampled_from([0.0, 1e-30, 1e-8, 0.5, 3.0])))
    if weights.sum() == 0:
        weights[data.draw(st.integers(0, size - 1))] = 1.0
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    for _ in range(20):
        assert weights[sample_weights(rng, weights)] > 0


def test_sample_weights_matches_the_weights_across_blocks():
    rng = np.random.default_rng(0)
    size = 3 * BLOCK + 17  # four blocks, the last one short
    weights = rng.random(size) * (rng.random(size) < 0.3)  # many zeros
    weights[BLOCK - 1] = weights[BLOCK] = weights[-1] = 2.0  # both sides of a block edge, and the end
    n = 100_000
    counts = np.bincount([sample_weights(rng, weights) for _ in range(n)], minlength=size)
    assert counts[weights == 0].sum() == 0
    support = weights > 0
    expected = n * weights[support] / weights.sum()
    z = (counts[support] - expected) / np.sqrt(expected)
    assert np.abs(z).max() < 5  # no entry off by five standard deviations


def test_sample_log_probs_uses_one_uniform_per_draw():
    lp = np.log(np.array([0.1, 0.2, 0.3, 0.4] * 100, dtype=np.float32))
    a, b = np.random.default_rng(7), np.random.default_rng(7)
    for _ in range(50):
        sample_log_probs(a, lp)
        b.random()
    assert a.random() == b.random()


@settings(max_examples=60, deadline=None)
@given(row=arrays(np.float32, 700, elements=st.floats(-60, 10, width=32)), data=st.data())
def test_float32_logsumexp_and_log_mass_match_float64(row, data):
    allowed = data.draw(arrays(bool, 700))
    mask = TokenMask("m", allowed)
    assert math.isclose(logsumexp(row), exact_logsumexp(row), rel_tol=0, abs_tol=1e-5)
    want = exact_logsumexp(row[allowed]) if allowed.any() else -math.inf
    got = log_mass(row, mask)
    # float32 rows: the shift by the top value rounds to ~1e-7 of it, so compare to 1e-5 nats
    assert got == want if want == -math.inf else math.isclose(got, want, rel_tol=0, abs_tol=1e-5)


def test_log_mass_far_below_the_top_token_is_exact():
    row = np.zeros(1000, dtype=np.float32)
    row[:10] = -200.0  # the mask's tokens: 1e-87 of the top token's mass, below float32's range
    mask = TokenMask("tail", np.arange(1000) < 10)
    assert math.isclose(log_mass(row, mask), -200.0 + math.log(10), abs_tol=1e-9)
    assert log_mass(np.full(5, -np.inf, dtype=np.float32), TokenMask("all", np.ones(5, bool))) == -math.inf


def test_restriction_puts_minus_infinity_outside_the_mask():
    row = np.log(np.linspace(0.1, 1.0, 6)).astype(np.float32)
    allowed = np.array([True, False, True, True, False, False])
    for given_as in (allowed, TokenMask("m", allowed)):
        r = restrict_log_probs(row, given_as)
        assert np.array_equal(r[allowed], row[allowed]) and np.all(r[~allowed] == -np.inf)
    assert log_indicator(allowed).dtype == np.float32
    mask = TokenMask("m", allowed)
    assert mask.log_weights is mask.log_weights and not mask.weights.flags.writeable
