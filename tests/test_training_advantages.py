"""Group advantages: each formula against a direct computation, plus properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from selfsteer.training.advantages import (
    ADVANTAGES,
    EPS,
    batch_z,
    get_advantage,
    group_mean,
    group_z,
    leave_one_out,
)

rewards_st = arrays(np.float64, st.tuples(st.integers(1, 5), st.integers(2, 8)),
                    elements=st.floats(-3, 3, allow_nan=False, width=32))


@settings(max_examples=60, deadline=None)
@given(rewards_st)
def test_group_mean_and_z_are_zero_sum_per_group(r):
    assert np.allclose(group_mean(r).sum(axis=1), 0, atol=1e-9)
    z = group_z(r)
    assert np.allclose(z.sum(axis=1), 0, atol=1e-6)
    for b in range(r.shape[0]):
        std = r[b].std(ddof=1)
        assert np.allclose(z[b], (r[b] - r[b].mean()) / (std + EPS))


@settings(max_examples=60, deadline=None)
@given(rewards_st)
def test_leave_one_out_matches_its_definition(r):
    g = r.shape[1]
    expected = np.array([[r[b, i] - np.delete(r[b], i).mean() for i in range(g)] for b in range(r.shape[0])])
    assert np.allclose(leave_one_out(r), expected)


def test_constant_groups_have_zero_advantage_and_batch_z_uses_the_batch_std():
    r = np.array([[1.0, 1.0, 1.0], [0.0, 1.0, 2.0]])
    assert np.all(group_z(r)[0] == 0)
    assert np.allclose(batch_z(r), group_mean(r) / (r.std(ddof=1) + EPS))
    assert np.allclose(group_z(r)[1], [-1, 0, 1], atol=1e-3)


def test_registry_and_shape_errors():
    assert set(ADVANTAGES) == {"group_z", "group_mean", "batch_z", "leave_one_out", "none"}
    with pytest.raises(ValueError, match="choose one of"):
        get_advantage("gae")
    with pytest.raises(ValueError, match=r"shape \(B, G\)"):
        group_z(np.zeros(4))
