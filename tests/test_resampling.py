"""Every registered resampling scheme against its contract (style.md L1, L6a)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selfsteer.smc.resampling import RESAMPLERS, get_resampler

weights_st = st.lists(st.floats(0, 1), min_size=1, max_size=12).filter(lambda w: sum(w) > 1e-6)
SCHEMES = sorted(RESAMPLERS)


@pytest.mark.parametrize("scheme", SCHEMES)
@given(w=weights_st, n=st.integers(1, 40), seed=st.integers(0, 2**32 - 1))
@settings(max_examples=150, deadline=None)
def test_contract(scheme, w, n, seed):
    w = np.array(w) / np.sum(w)
    a = RESAMPLERS[scheme](np.random.default_rng(seed), w, n)
    assert a.shape == (n,)
    assert a.dtype.kind == "i"
    assert np.all(np.diff(a) >= 0), "ancestors are sorted"
    assert np.all((a >= 0) & (a < len(w)))
    assert np.all(w[a] > 0), "a zero-weight particle is never drawn"


@given(w=weights_st, n=st.integers(1, 40), seed=st.integers(0, 2**32 - 1))
@settings(max_examples=150, deadline=None)
def test_systematic_counts_are_floor_or_ceil(w, n, seed):
    w = np.array(w) / np.sum(w)
    counts = np.bincount(RESAMPLERS["systematic"](np.random.default_rng(seed), w, n), minlength=len(w))
    assert np.all(counts >= np.floor(n * w - 1e-9)) and np.all(counts <= np.ceil(n * w + 1e-9))


@given(w=weights_st, n=st.integers(1, 40), seed=st.integers(0, 2**32 - 1))
@settings(max_examples=150, deadline=None)
def test_residual_keeps_floor(w, n, seed):
    w = np.array(w) / np.sum(w)
    counts = np.bincount(RESAMPLERS["residual"](np.random.default_rng(seed), w, n), minlength=len(w))
    assert np.all(counts >= np.floor(n * w - 1e-9))


@pytest.mark.parametrize("scheme", SCHEMES)
def test_unbiased_counts_and_variance(scheme):
    """Mean counts are n*w (within 4 SE); variance never above multinomial's n*w*(1-w)."""
    w = np.array([0.05, 0.2, 0.25, 0.25, 0.25, 0.0])
    n, reps = 5, 4000
    rng = np.random.default_rng(0)
    counts = np.array([np.bincount(RESAMPLERS[scheme](rng, w, n), minlength=len(w)) for _ in range(reps)])
    mean, var = counts.mean(0), counts.var(0)
    se = np.sqrt(n * w * (1 - w) / reps) + 1e-12
    assert np.all(np.abs(mean - n * w) <= 4 * se + 1e-9)
    assert np.all(var <= n * w * (1 - w) * 1.1 + 1e-9)


def test_stratified_can_miss_a_particle_above_one_over_n():
    """llamppl's test claimed w >= 1/N is always drawn; it is false for stratified (style.md)."""
    w = np.array([0.05, 0.2, 0.25, 0.25, 0.25])
    rng = np.random.default_rng(1)
    misses = sum(1 not in RESAMPLERS["stratified"](rng, w, 5) for _ in range(2000))
    assert 0.1 < misses / 2000 < 0.3


def test_unknown_scheme_lists_the_valid_ones():
    with pytest.raises(ValueError, match="multinomial.*residual.*stratified.*systematic"):
        get_resampler("nope")
