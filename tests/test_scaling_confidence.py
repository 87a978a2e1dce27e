"""RLCR's tag format (`scaling.answers`) and confidence as a weight (`scaling.confidence`)."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from selfsteer.smc.scaling import confidence_log_weight, parse_tagged
from selfsteer.smc.scaling.metrics import brier, ece


def test_parse_reads_the_last_tags():
    t = parse_tagged("think <answer>3</answer> no wait <answer> 4 </answer><confidence>0.7</confidence>")
    assert (t.answer, t.confidence) == ("4", 0.7)
    assert t.reasoning == "think <answer>3</answer> no wait"
    assert parse_tagged("<confidence>0.2</confidence><confidence>0.9</confidence><answer>x</answer>").confidence == 0.9


@pytest.mark.parametrize("q", ["1.2", "abc", "-0.1", "nan", "inf", ""])
def test_bad_confidence_is_a_format_failure(q):
    assert parse_tagged(f"<answer>a</answer><confidence>{q}</confidence>").confidence is None


def test_missing_tags_and_percentages():
    assert parse_tagged("no tags here").answer is None
    assert parse_tagged("<answer></answer>").answer is None
    assert parse_tagged("<answer>a</answer>").confidence is None
    assert parse_tagged("<answer>a</answer><confidence>85%</confidence>").confidence == pytest.approx(0.85)


@given(st.floats(min_value=0.0, max_value=1.0), st.floats(min_value=0.0, max_value=5.0))
def test_confidence_weight_is_power_times_log_of_floored_confidence(q, power):
    assert confidence_log_weight(q, power) == pytest.approx(power * math.log(max(q, 0.01)))
    assert confidence_log_weight(q, 0.0) == 0.0


def test_confidence_weight_errors_and_missing_confidence():
    assert confidence_log_weight(None, 2.0) == pytest.approx(2 * math.log(0.01))
    with pytest.raises(ValueError, match=">= 0"):
        confidence_log_weight(0.5, -1.0)
    with pytest.raises(ValueError, match="floor"):
        confidence_log_weight(0.5, 1.0, floor=0.0)


def test_calibration_metrics_on_known_data():
    assert brier([1.0, 0.0, 0.5], [True, False, True]) == pytest.approx(0.25 / 3)
    # each bin's accuracy equals its confidence: calibrated, ECE 0
    q = [0.25] * 4 + [0.75] * 4
    c = [True, False, False, False, True, True, True, False]
    assert ece(q, c) == pytest.approx(0.0)
    assert ece([0.9, 0.9], [False, False]) == pytest.approx(0.9)
