"""`ScalingOptions`: validation, the policy it builds, and its JSON round trip (the sandbox's wire format)."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from selfsteer.smc.scaling import AGGREGATORS, Exploration, ScalingOptions

options_st = st.builds(
    ScalingOptions,
    explore=st.floats(0, 10), explore_b0=st.floats(0, 1),
    vote=st.one_of(st.none(), st.sampled_from(AGGREGATORS)), trust=st.booleans(),
)


@given(options_st)
def test_json_round_trip_gives_an_equal_value(options):
    wire = json.loads(json.dumps(options.to_json()))
    assert ScalingOptions.from_json(wire) == options


def test_missing_keys_take_defaults_and_unknown_keys_are_refused():
    assert ScalingOptions.from_json({}) == ScalingOptions()
    assert ScalingOptions.from_json({"vote": "majority"}) == ScalingOptions(vote="majority")
    with pytest.raises(ValueError, match=r"unknown scaling options \['votes'\]; valid ones are"):
        ScalingOptions.from_json({"votes": "majority"})


@pytest.mark.parametrize(("field", "value", "message"), [
    ("explore", -1.0, "explore must be >= 0"), ("explore", "1", "explore must be >= 0"),
    ("explore_b0", -0.5, "explore_b0 must be"), ("vote", "mode", "unknown vote 'mode'; choose one of"),
    ("trust", "yes", "trust must be True or False"),
])
def test_bad_values_name_the_option(field, value, message):
    with pytest.raises(ValueError, match=message):
        ScalingOptions(**{field: value})


def test_reweight_is_exploration_only_when_asked_for():
    assert ScalingOptions().reweight() is None
    policy = ScalingOptions(explore=2.0, explore_b0=0.25).reweight()
    assert isinstance(policy, Exploration) and (policy.weight, policy.b0) == (2.0, 0.25)
