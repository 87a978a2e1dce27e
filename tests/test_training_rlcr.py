"""RLCR: the Brier reward's calibration property, the format gate, aggregators, and the metrics."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selfsteer.smc.scaling import parse_tagged, vote_answers
from selfsteer.training import auroc, brier, ece
from selfsteer.training.objectives import rlcr
from selfsteer.training.questions import Question, Task
from selfsteer.training.rewards import score
from selfsteer.training.rollout import Sample


def make_sample(text: str, *, correct: bool, answer: str | None = "7") -> Sample:
    q = Question("q", "What is 3 + 4?", "7")
    return Sample(q, (1,), (2,), np.zeros(1), np.ones(1, dtype=bool), text, False, answer=answer, correct=correct)


REWARDS = rlcr.build(rlcr.RLCRParams(), None, None).rewards


def reward(text, correct, answer="7"):
    return float(score([make_sample(text, correct=correct, answer=answer)], REWARDS)[0])


def test_expected_brier_reward_is_maximised_at_the_true_probability():
    grid = np.linspace(0, 1, 1001)
    for p in np.linspace(0, 1, 21):
        values = [rlcr.expected_reward(q, p) for q in grid]
        assert grid[int(np.argmax(values))] == pytest.approx(p, abs=1e-3)
        # also for the composite (format + accuracy + brier) reward actually used in training
        composite = [p * reward(f"<answer>7</answer><confidence>{q}</confidence>", True)
                     + (1 - p) * reward(f"<answer>7</answer><confidence>{q}</confidence>", False) for q in grid[::50]]
        assert grid[::50][int(np.argmax(composite))] == pytest.approx(p, abs=0.05 + 1e-9)


def test_calibrated_expected_reward_is_p_squared_and_rewards_correctness():
    ps = np.linspace(0, 1, 11)
    at_p = np.array([rlcr.expected_reward(p, p) for p in ps])
    assert np.allclose(at_p, ps**2)
    assert np.all(np.diff(at_p) > 0)


@settings(max_examples=50, deadline=None)
@given(st.floats(0, 1), st.booleans())
def test_unformatted_earns_nothing_and_formatted_at_least_the_format_weight(q, correct):
    formatted = reward(f"<answer>7</answer><confidence>{q}</confidence>", correct)
    assert formatted >= 0.5 - 1e-12
    c = 1.0 if correct else 0.0
    assert formatted == pytest.approx(0.5 + 0.5 * c + 0.5 * (1 - (c - q) ** 2))
    assert reward("7 with no tags", correct) == 0.0 <= formatted


@pytest.mark.parametrize("text", [
    "<answer>7</answer><confidence>1.2</confidence>",
    "<answer>7</answer><confidence>abc</confidence>",
    "<answer>7</answer>",
    "<answer>7</answer><confidence>-0.1</confidence>",
    "<answer> </answer><confidence>0.5</confidence>",
])
def test_format_gate_rejects_bad_confidences_and_answers(text):
    assert reward(text, True) == 0.0


def test_last_tag_wins():
    parsed = parse_tagged("<answer>3</answer><confidence>0.2</confidence> then <answer>7</answer><confidence>0.9</confidence>")
    assert parsed.answer == "7" and parsed.confidence == 0.9
    task = Task("t", (), (), numeric=True)
    assert task.extract("<answer>3</answer> ... <answer>It is 07.</answer>") == "7"


def test_aggregators():
    def confidence_weighted_vote(answers, qs):
        return vote_answers(answers, "confidence", confidences=qs).answer

    def max_confidence(answers, qs):
        return vote_answers(answers, "max_confidence", confidences=qs).answer

    answers = ["a", "b", "b", "a", None]
    assert confidence_weighted_vote(answers, [0.5] * 5) == "a"  # equal q: majority vote (first on ties)
    assert confidence_weighted_vote(["a", "b", "b"], [0.9, 0.4, 0.4]) == "a"
    assert confidence_weighted_vote(["a", "b", "b"], [0.5, 0.5, 0.5]) == "b"
    assert max_confidence(answers, [0.1, 0.7, 0.3, 0.9, 1.0]) == "a"
    assert max_confidence([None], [0.3]) is None


def test_ece_of_calibrated_data_vanishes_and_metrics_match_hand_values():
    rng = np.random.default_rng(0)
    q = rng.uniform(0, 1, 200_000)
    c = rng.uniform(0, 1, q.size) < q
    assert ece(q, c) < 0.01
    assert ece([0.9, 0.9], [True, False]) == pytest.approx(0.4)
    assert brier([1.0, 0.0, 0.5], [True, True, False]) == pytest.approx((0 + 1 + 0.25) / 3)
    assert auroc([0.9, 0.8, 0.3, 0.1], [True, True, False, False]) == 1.0
    assert auroc([0.5, 0.5], [True, False]) == 0.5
    assert np.isnan(auroc([0.5, 0.6], [True, True]))
    with pytest.raises(ValueError, match=r"lie in \[0, 1\]"):
        ece([1.5], [True])


def test_a_percentage_confidence_passes_the_format_gate_as_inference_reads_it():
    text = "<answer>7</answer><confidence>80%</confidence>"
    assert parse_tagged(text).confidence == pytest.approx(0.8)
    assert rlcr.format_reward(make_sample(text, correct=True)) == 1.0
    assert reward(text, True) == pytest.approx(reward("<answer>7</answer><confidence>0.8</confidence>", True))
    assert reward(text, True) == pytest.approx(0.5 + 0.5 + 0.5 * (1 - 0.2**2))


CONFIDENCE_TEXT = st.one_of(
    st.floats(-0.5, 1.5).map(str), st.floats(-10, 110).map(lambda x: f"{x}%"),
    st.text(alphabet="0123456789.%-e ", max_size=6),
)


@settings(max_examples=100, deadline=None)
@given(CONFIDENCE_TEXT)
def test_the_format_gate_accepts_exactly_the_confidences_inference_reads(q):
    text = f"<answer>7</answer><confidence>{q}</confidence>"
    assert rlcr.format_reward(make_sample(text, correct=True)) == float(parse_tagged(text).confidence is not None)


def test_distinct_answers_leave_out_missing_answers_in_training_metrics():
    from selfsteer.smc.scaling import distinct_answers
    from selfsteer.training.evaluate import sample_metrics
    from selfsteer.training.rl import group_metrics

    groups = [[make_sample("a", correct=True, answer="7"), make_sample("b", correct=False, answer=None)],
              [make_sample("c", correct=False, answer=None), make_sample("d", correct=False, answer=None)]]
    assert [distinct_answers([s.answer for s in g]) for g in groups] == [1, 0]
    assert sample_metrics(groups)["distinct_answers"] == pytest.approx(0.5)
    assert group_metrics(groups, np.zeros((2, 2)), np.zeros((2, 2)))["distinct_answers"] == pytest.approx(0.5)
