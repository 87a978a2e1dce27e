"""`benchmarks.stats`: paired-bootstrap ratio intervals, as the foundation targets use them."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks import targets
from benchmarks.stats import paired, paired_bootstrap, ratio

times = st.lists(st.floats(0.1, 100.0, allow_nan=False), min_size=2, max_size=30)
stats = st.sampled_from(["median", "mean"])


@given(times, st.floats(0.2, 5.0), stats)
@settings(max_examples=60, deadline=None)
def test_a_constant_factor_gives_a_point_interval(a, c, stat):
    b = [c * x for x in a]
    assert ratio(a, b, stat) == pytest.approx(c)
    lo, hi = paired_bootstrap(a, b, stat, n_boot=200)
    assert lo == pytest.approx(c) and hi == pytest.approx(c)


@given(times, st.data(), stats)
@settings(max_examples=60, deadline=None)
def test_interval_is_ordered_scales_and_inverts(a, data, stat):
    b = data.draw(st.lists(st.floats(0.1, 100.0, allow_nan=False), min_size=len(a), max_size=len(a)))
    lo, hi = paired_bootstrap(a, b, stat, n_boot=300, seed=1)
    assert lo <= hi
    lo3, hi3 = paired_bootstrap(a, [3 * y for y in b], stat, n_boot=300, seed=1)  # same resamples
    assert (lo3, hi3) == pytest.approx((3 * lo, 3 * hi))
    inv_lo, inv_hi = paired_bootstrap(b, a, stat, n_boot=300, seed=1)  # swapping inverts the ratios
    assert (inv_lo, inv_hi) == pytest.approx((1 / hi, 1 / lo), rel=1e-6) or stat == "median"


def test_interval_covers_the_true_ratio_most_of_the_time():
    """Paired seeds whose ratio of means is 2 in truth: the 90% interval covers 2 in most studies."""
    rng = np.random.default_rng(0)
    covered = 0
    for _ in range(200):
        a = rng.lognormal(0.0, 0.5, size=40)
        b = 2 * a * rng.lognormal(-0.125, 0.5, size=40)  # E[lognormal(-s^2/2, s)] = 1
        lo, hi = paired_bootstrap(a, b, "mean", n_boot=1000, seed=int(rng.integers(1 << 30)))
        covered += lo <= 2.0 <= hi
    assert 0.8 <= covered / 200 <= 0.97  # a percentile bootstrap at n=40 is near, not at, 90%


def test_bad_input_names_the_fix():
    with pytest.raises(ValueError, match="one value per seed"):
        paired_bootstrap([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="level"):
        paired_bootstrap([1.0, 2.0], [1.0, 2.0], level=1.5)


def test_foundation_target_notes_the_paired_interval():
    def run(system, repeat, wall, error=None):
        return {"system": system, "task": "no_e", "repeat": repeat, "wall_s": wall, "error": error}

    runs = [run("selfsteer", i, 1.0 + i) for i in range(4)] + [run("genlm-control", i, 3.0 * (1.0 + i)) for i in range(3)]
    runs += [run("genlm-control", 3, 0.0, error="boom"), run("llamppl", 0, 9.0)]
    assert paired(runs, "selfsteer", "genlm-control", "wall_s", "no_e") == ([1.0, 2.0, 3.0], [3.0, 6.0, 9.0])
    assert targets.median_ratio_interval(runs, "no_e") == "90% paired-bootstrap interval 3.00-3.00 over 3 seeds"
    assert targets.median_ratio_interval(runs[:2] + runs[4:6], "no_e") == ""  # two seeds: no interval
