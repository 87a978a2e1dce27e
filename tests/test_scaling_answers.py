"""The answers module: canonical forms and the aggregators over a population's answers, confidences
and weights (exact and property checks)."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from selfsteer.smc import ExactLM, LMContext, Model, smc
from selfsteer.smc.scaling import (
    AGGREGATORS,
    canonical_answer,
    distinct_answers,
    final_answers,
    last_number,
    mean_distinct_answers,
    parse_tagged,
    vote,
    vote_answers,
)
from selfsteer.smc.scaling.answers import (
    confidence_vote,
    likelihood_vote,
    majority_vote,
    max_confidence_vote,
)

answers_st = st.lists(st.one_of(st.none(), st.sampled_from("abcd")), min_size=1, max_size=12)


@pytest.mark.parametrize(("raw", "canonical"), [
    ("12", "12"), (" 12.0 ", "12"), ("+12", "12"), ("1,000", "1000"), ("3.50", "3.5"), ("-0", "0"),
    ("0.25.", "0.25"), ("Paris", "paris"), ("  the  Eiffel tower! ", "the eiffel tower"), ("", None),
    ("...", None), (None, None), (7, 7),
])
def test_canonical_answer(raw, canonical):
    assert canonical_answer(raw) == canonical


def test_majority_counts_votes_and_breaks_ties_by_first_particle():
    v = majority_vote(["b", "a", None, "a", "b", "c"])
    assert v.scores == {"b": 2.0, "a": 2.0, "c": 1.0} and v.answer == "b" and v.n_voters == 5
    assert v.share == pytest.approx(0.4)
    assert majority_vote([None, None]).answer is None


def test_confidence_vote_sums_confidences_and_skips_missing_ones():
    v = confidence_vote(["a", "b", "b", "c"], [0.9, 0.3, 0.4, None])
    assert v.answer == "a" and v.scores == pytest.approx({"a": 0.9, "b": 0.7})
    assert confidence_vote(["a", "b"], [0.0, 0.0]).answer is None  # no confidence, no winner


def test_max_confidence_picks_the_most_confident_particle():
    v = max_confidence_vote(["a", "b", "b", "a"], [0.5, 0.8, 0.1, 0.7])
    assert v.answer == "b" and v.scores == {"b": 0.8, "a": 0.7}


def test_likelihood_vote_is_the_weighted_answer_marginal():
    log_w = np.log([0.1, 0.2, 0.3, 0.4])
    v = likelihood_vote(["a", "b", "a", None], log_w)  # the None particle's weight is left out
    assert v.answer == "a" and v.scores == pytest.approx({"a": 4 / 6, "b": 2 / 6})
    assert likelihood_vote(["a", "b"], np.array([-np.inf, 0.0])).answer == "b"


@given(answers_st, st.floats(min_value=1e-3, max_value=1.0))
def test_equal_confidences_make_the_weighted_vote_the_majority_vote(answers, q):
    plain = majority_vote(answers)
    weighted = confidence_vote(answers, [q] * len(answers))
    assert weighted.answer == plain.answer
    assert list(weighted.scores) == list(plain.scores)
    assert all(math.isclose(weighted.scores[a], q * plain.scores[a]) for a in plain.scores)


@given(answers_st, st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=12, max_size=12))
def test_max_confidence_returns_an_answer_holding_the_largest_confidence(answers, qs):
    qs = qs[: len(answers)]
    v = max_confidence_vote(answers, qs)
    voted = [q for a, q in zip(answers, qs, strict=True) if a is not None]
    if not voted or max(voted) == 0:
        assert v.answer is None
    else:
        assert max(q for a, q in zip(answers, qs, strict=True) if a == v.answer) == max(voted)


def test_vote_dispatch_and_errors():
    assert set(AGGREGATORS) == {"majority", "confidence", "max_confidence", "likelihood"}
    with pytest.raises(ValueError, match="choose one of"):
        vote_answers(["a"], "mode")
    with pytest.raises(ValueError, match="confidences"):
        vote_answers(["a"], "confidence")
    with pytest.raises(ValueError, match="log-weights"):
        vote_answers(["a"], "likelihood")


class Guess(Model):
    """Draws one token of an exact LM as its answer and states a confidence of 0.5."""

    def __init__(self):
        super().__init__()
        self.ctx = LMContext(ExactLM(("a", "b", " c"), max_len=1, seed=2), "a")

    async def step(self):
        tok = await self.sample(self.ctx.next_token())
        self.confidence = 0.5
        self.finish(tok.text)


def test_result_vote_matches_the_posterior_and_majority():
    result = smc(Guess(), 24, seed=0, ess_threshold=0.0)
    answers = final_answers(result)
    assert answers == [canonical_answer(p.output) for p in result.particles]
    assert vote(result, "majority").answer == vote(result, "confidence").answer
    by_answer: dict = {}
    for out, prob in result.posterior.items():
        by_answer[canonical_answer(out)] = by_answer.get(canonical_answer(out), 0.0) + prob
    assert vote(result, "likelihood").scores == pytest.approx(by_answer)


# One rule for everyone: each test pins a case where programs, scaling and training used to disagree.

@pytest.mark.parametrize(("raw", "canonical"), [
    ("1,000", "1000"), ("-12,345.50", "-12345.5"), ("1,2,3", "1,2,3"), ("12,34", "12,34"), ("1,0000", "1,0000"),
])
def test_commas_are_thousands_separators_only_in_groups_of_three(raw, canonical):
    assert canonical_answer(raw) == canonical


@pytest.mark.parametrize(("text", "number"), [
    ("It is 1,000.", "1000"), ("1,2,3", "3"), ("from 7 to 1,000,000", "1000000"), ("-4.50 or so", "-4.5"),
    ("no number", None),
])
def test_last_number_reads_thousands_separators(text, number):
    assert last_number(text) == number


def test_training_task_reads_numbers_like_inference():
    from selfsteer.training.questions import Question, Task

    task = Task("t", (), (), numeric=True)
    for text in ("<answer>1,000</answer>", "so the total is 1,000.", "<answer>1000.0</answer>"):
        assert task.extract(text) == canonical_answer("1,000") == "1000"
    assert task.is_correct(task.extract("<answer>1,000</answer>"), Question("q", "?", "1000"))
    assert task.is_correct("1000", Question("q", "?", "1,000"))


@pytest.mark.parametrize(("text", "q"), [("0.8", 0.8), ("80%", 0.8), (" 80 % ", 0.8), ("100%", 1.0), ("0%", 0.0),
                                         ("101%", None), ("80", None), ("0.8%", 0.008), ("%", None)])
def test_one_confidence_rule(text, q):
    got = parse_tagged(f"<answer>a</answer><confidence>{text}</confidence>").confidence
    assert got == (None if q is None else pytest.approx(q))


def test_none_is_never_a_distinct_answer():
    assert distinct_answers(["a", None, None]) == 1
    assert distinct_answers([None]) == 0
    assert mean_distinct_answers([["a", None], [None, None], ["a", "b"]]) == pytest.approx(1.0)
    assert math.isnan(mean_distinct_answers([]))
