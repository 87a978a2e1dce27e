"""Outcome-based exploration: bonus properties, persistent per-question counts, c = 0 is GRPO."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selfsteer.training.advantages import group_z
from selfsteer.training.objectives.exploration import (
    COUNTS_KEY,
    batch_bonus,
    exploration_advantages,
    historical_bonus,
    ucb_bonus,
    update_counts,
)
from selfsteer.training.questions import Question
from selfsteer.training.rollout import Sample

answers_st = st.lists(st.sampled_from(["1", "2", "3", None]), min_size=2, max_size=10)


def group(answers, state, qid="q"):
    q = Question(qid, "?", "1")
    return [Sample(q, (1,), (2,), np.zeros(1), np.ones(1, dtype=bool), "", False, state=state, answer=a,
                   correct=a == "1") for a in answers]


def test_ucb_bonus_is_one_until_seen_twice_and_never_increases():
    n = np.arange(0, 200)
    b = ucb_bonus(n)
    assert np.all((b > 0) & (b <= 1))
    assert np.all(b[:2] == 1)
    assert np.all(np.diff(b) <= 0)


@pytest.mark.parametrize("b0", [0.5, 0.3, 1.0])
def test_ucb_con_is_negative_exactly_when_the_count_exceeds_one_over_b0_squared(b0):
    state: dict = {}
    for n in range(1, 30):
        bonus = historical_bonus(state, ["x"], variant="ucb_con", b0=b0)[0]
        assert state[COUNTS_KEY]["x"] == n
        assert (bonus < 0) == (n > 1 / b0**2 + 1e-9)


@settings(max_examples=60, deadline=None)
@given(answers_st)
def test_ucb_mean_bonuses_sum_to_zero(answers):
    bonus = historical_bonus({}, answers, variant="ucb_mean", b0=0.5)
    assert bonus.sum() == pytest.approx(0, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(answers_st)
def test_batch_penalty_counts_copies(answers):
    bonus = batch_bonus(answers)
    g = len(answers)
    for a, b in zip(answers, bonus, strict=True):
        k = sum(x == a for x in answers) if a is not None else 1
        assert b == pytest.approx(-(k - 1) / g)
        assert (b == 0) == (a is None or k == 1)


def test_counts_persist_across_steps_and_are_per_question():
    states = {"a": {}, "b": {}}
    update_counts(states["a"], ["1", "1", "2"])
    n = update_counts(states["a"], ["1", None])
    assert list(n) == [3, 0]
    assert states["a"][COUNTS_KEY] == {"1": 3, "2": 1}
    assert states["b"] == {}
    rewards = np.array([[1.0, 0.0]])
    exploration_advantages(rewards, [group(["1", "2"], states["b"], "b")], variant="ucb", c=0.2, b0=0.5,
                           scale_rewards="group")
    assert states["b"][COUNTS_KEY] == {"1": 1, "2": 1} and states["a"][COUNTS_KEY]["1"] == 3


@pytest.mark.parametrize("variant", ["ucb", "ucb_mean", "ucb_con", "batch"])
def test_zero_weight_reproduces_grpo_and_bonus_favours_rare_answers(variant):
    rewards = np.array([[1.0, 0.0, 0.0, 0.0]])
    state: dict = {COUNTS_KEY: {"2": 10}}
    answers = ["1", "2", "2", "3"]
    assert np.array_equal(exploration_advantages(rewards, [group(answers, dict(state))], variant=variant, c=0.0,
                                                 b0=0.5, scale_rewards="group"), group_z(rewards))
    adv = exploration_advantages(rewards, [group(answers, dict(state))], variant=variant, c=0.2, b0=0.5,
                                 scale_rewards="group")
    base = group_z(rewards)[0]
    assert adv[0, 3] - base[3] > adv[0, 1] - base[1]  # the unique wrong answer "3" beats the repeated "2"
