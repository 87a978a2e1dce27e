"""The answer-with-confidence program family on the bundled model (few particles, short budgets)."""

import math

import numpy as np
import pytest

from selfsteer.programs.answer_with_confidence import (
    CLOSE_ANSWER,
    CONFIDENCE,
    CONFIDENCE_PREFIX,
    NUMBER,
    NUMBER_PREFIX,
    AnswerWithConfidence,
    closing_mask,
    continuation_mask,
)
from selfsteer.smc import smc
from selfsteer.smc.scaling import canonical_answer, parse_tagged, vote

SHORT = dict(max_reasoning_tokens=8, reasoning_line_tokens=8)


def texts(lm, mask):
    return {lm.vocab.texts[i] for i in mask.ids}


def test_number_masks_keep_numbers_well_formed(lm):
    digits = {str(d) for d in range(10)}
    start = texts(lm, continuation_mask(lm, "", NUMBER_PREFIX, 10, complete=NUMBER, lead_space=True))
    assert digits | {"-"} <= start and "." not in start and "a" not in start
    after_int = texts(lm, continuation_mask(lm, "12", NUMBER_PREFIX, 10, complete=NUMBER, lead_space=True))
    assert digits | {"."} <= after_int and "-" not in after_int and " 1" not in after_int
    full = texts(lm, continuation_mask(lm, "123456789", NUMBER_PREFIX, 10, complete=NUMBER, lead_space=False))
    assert full == digits  # one character left: a digit keeps it complete, "." would not
    assert texts(lm, closing_mask(lm, CLOSE_ANSWER)) >= {"<", "</"}


@pytest.mark.parametrize(("state", "allowed"), [
    ("", {"0", "1"}), ("0", {"."}), ("1", {"."}), ("0.", set("0123456789")), ("1.", {"0"}), ("0.999", set()),
])
def test_confidence_masks_keep_q_in_the_unit_interval(lm, state, allowed):
    got = texts(lm, continuation_mask(lm, state, CONFIDENCE_PREFIX, 5, complete=CONFIDENCE, lead_space=False))
    assert got == allowed


def test_particles_answer_a_number_and_state_a_confidence(lm):
    result = smc(AnswerWithConfidence(lm, "What is 3 + 4?", answer_type="number", **SHORT), 3, seed=0,
                 ess_threshold=0.0)
    assert result.status == "completed"
    alive = [p for p in result.particles if p.alive]
    assert alive
    for p in alive:
        parsed = parse_tagged(p.text)
        assert p.output == p.answer == canonical_answer(parsed.answer)
        assert float(p.output) == float(p.answer_text)
        assert 0.0 <= p.confidence <= 1.0 and parsed.confidence == p.confidence
        assert p._check_passed is True
    assert vote(result, "confidence").answer in {p.answer for p in alive}


def test_confidence_power_multiplies_weights_by_confidence(lm):
    runs = [smc(AnswerWithConfidence(lm, "What is 2 + 5?", answer_type="number", confidence_power=power, **SHORT),
                3, seed=1, ess_threshold=0.0) for power in (0.0, 1.0)]
    assert runs[0].outputs == runs[1].outputs
    for p0, p1 in zip(runs[0].particles, runs[1].particles, strict=True):
        if p0.alive:
            assert p1.log_weight - p0.log_weight == pytest.approx(math.log(max(p0.confidence, 0.01)), abs=1e-9)


def test_text_answers_and_examples_in_the_prompt(lm):
    model = AnswerWithConfidence(lm, "Name a primary colour.", examples=[("Name a fruit.", "<answer>apple</answer>")],
                                 **SHORT)
    ids = lm.prompt_ids(model._prior_prompt)
    assert "Name a fruit." in lm.decode(ids) and "<answer>apple</answer>" in lm.decode(ids)
    result = smc(model, 2, seed=0, ess_threshold=0.0)
    for p in result.particles:
        if p.alive:
            assert isinstance(p.output, str) and p.output and CLOSE_ANSWER not in p.output
            assert np.isfinite(p.log_weight)


def test_bad_parameters_are_rejected(lm):
    with pytest.raises(ValueError, match="question"):
        AnswerWithConfidence(lm, "  ")
    with pytest.raises(ValueError, match="answer_type"):
        AnswerWithConfidence(lm, "q", answer_type="date")
    with pytest.raises(ValueError, match="confidence_power"):
        AnswerWithConfidence(lm, "q", confidence_power=-1)


def test_exploration_at_weight_zero_is_plain_smc_on_the_real_model(lm):
    from selfsteer.smc.scaling import Exploration

    def run(reweight):
        return smc(AnswerWithConfidence(lm, "What is 6 + 2?", answer_type="number", confidence_power=1.0, **SHORT),
                   3, seed=2, ess_threshold=0.9, reweight=reweight)

    plain, zero = run(None), run(Exploration(0.0))
    assert plain.outputs == zero.outputs and [p.text for p in plain.particles] == [p.text for p in zero.particles]
    assert np.array_equal(plain.log_weights, zero.log_weights) and plain.n_resamples == zero.n_resamples
