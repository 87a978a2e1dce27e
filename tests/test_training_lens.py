"""LENS: bounds and monotonicity of the calibrated reward, the D estimate, and the advantages."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from selfsteer.training.advantages import group_z
from selfsteer.training.objectives.lens import estimate_d, lens_advantages, lens_rewards, w
from selfsteer.training.questions import Question
from selfsteer.training.rollout import Sample

p_bar_st = st.floats(1e-4, 1.0, allow_nan=False)


def group(correct, p_bar):
    q = Question("q", "?", "x")
    out = []
    for c, p in zip(correct, p_bar, strict=True):
        n = 4
        out.append(Sample(q, (1,), (2,) * n, np.full(n, np.log(p)), np.ones(n, dtype=bool), "", False, correct=bool(c)))
    return out


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.booleans(), p_bar_st), min_size=2, max_size=12))
def test_incorrect_rewards_lie_in_minus_one_over_g_to_zero_and_correct_stay_one(rows):
    correct = np.array([c for c, _ in rows], dtype=float)
    p_bar = np.array([p for _, p in rows])
    g = len(rows)
    d = estimate_d(correct, p_bar)
    assert d >= 2 * p_bar.max() - 1e-12
    tilde = lens_rewards(correct, p_bar)
    assert np.all(tilde[correct == 1] == 1)
    wrong = tilde[correct == 0]
    assert np.all(wrong <= 0) and np.all(wrong >= -1 / g - 1e-12)


@settings(max_examples=60, deadline=None)
@given(st.floats(0.01, 0.5), st.floats(0.01, 0.5), st.integers(2, 16))
def test_incorrect_reward_decreases_with_confidence(p1, p2, g):
    assume(abs(p1 - p2) > 1e-6)
    d = 1.0  # fixed D > every p̄
    lo, hi = sorted([p1, p2])
    r = lens_rewards(np.zeros(2), np.array([lo, hi]), d)
    assert r[1] < r[0]


def test_d_estimate_uses_the_importance_estimate_when_it_is_larger():
    correct = np.array([1.0, 0.0, 0.0, 0.0])
    p_bar = np.array([0.05, 0.01, 0.02, 0.03])
    d_imp = 1 / np.mean(correct / p_bar)  # = 4 * 0.05 = 0.2 > 2 * 0.05
    assert estimate_d(correct, p_bar) == pytest.approx(d_imp)
    assert estimate_d(np.zeros(3), np.array([0.1, 0.3, 0.2])) == pytest.approx(0.6)


def test_all_incorrect_groups_learn_where_grpo_does_not():
    rewards = np.zeros((1, 4))
    groups = [group([0, 0, 0, 0], [0.1, 0.2, 0.4, 0.8])]
    adv = lens_advantages(rewards, groups, alpha=0.25)
    assert np.all(group_z(rewards) == 0)
    assert np.all(adv != 0) and adv[0, 3] < adv[0, 0]  # the most confident mistake is pushed down most
    assert adv.sum() == pytest.approx(0, abs=1e-12)  # de-meaned only
    tilde = lens_rewards(np.zeros(4), np.array([0.1, 0.2, 0.4, 0.8]))
    assert np.allclose(adv[0], 0.25 * (tilde - tilde.mean()))
    # equal confidences: nothing to separate
    assert np.all(lens_advantages(rewards, [group([0] * 4, [0.3] * 4)], alpha=0.25) == 0)
    # alpha = 0: negative groups give zeros, exactly as GRPO
    assert np.all(lens_advantages(rewards, groups, alpha=0.0) == 0)


def test_mixed_groups_keep_the_sign_of_correctness():
    rewards = np.array([[1.0, 0.0, 0.0, 1.0]])
    adv = lens_advantages(rewards, [group([1, 0, 0, 1], [0.5, 0.2, 0.6, 0.1])], alpha=0.25)
    assert np.all(adv[0, [0, 3]] > 0) and np.all(adv[0, [1, 2]] < 0)
    assert adv[0, 2] < adv[0, 1]
    all_correct = lens_advantages(np.ones((1, 3)), [group([1, 1, 1], [0.5, 0.2, 0.6])], alpha=0.25)
    assert np.all(all_correct == 0)


def test_negative_sample_weight():
    z = np.linspace(0, 0.99, 100)
    values = w(z)
    assert values[0] == 0
    assert np.all(np.diff(values) > 0)
