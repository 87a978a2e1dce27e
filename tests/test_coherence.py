"""Coherency scoring (`selfsteer.planners.coherence`): the judge's expected score and log-likelihood
read exactly on a small exact LM, the word-list share on fixed strings, the bundled SmolLM2 as a
judge (any causal LM can judge), and the real Qwen2.5-Coder judge when it is downloaded."""

from __future__ import annotations

import math
import string

import numpy as np
import pytest

from selfsteer.planners.coherence import (
    CoherenceJudge,
    WordList,
    WordListMissing,
    default_judge_name,
    load_judge,
    summarize,
)
from selfsteer.smc import ExactLM

FLUENT = [
    "The old bicycle leaned against the garden wall, its red paint faded by many summers.",
    "I like to read books in the evening because it helps me relax after work.",
]
SALAD = [
    "The craftsmenzell bravosito ejercyleron y alciabo pyroconiciale nueces cambiadrarsezabloa.",
    "Heavens, the green town's uppon old newslebnaen window tonse voilesen banimien forevmbtishuen.",
]


@pytest.fixture(scope="module")
def words():
    return WordList()


def test_word_share_is_exact_on_fixed_strings(words):
    assert words.share("The cat sat on the mat.") == 1.0
    assert words.share("The craftsmenzell sat.") == pytest.approx(2 / 3)
    assert words.unknown("Blorn the wexily dog") == ["Blorn", "wexily"]
    assert words.share("Don\u2019t stop; it's 12 o'clock!") == 1.0  # curly apostrophes, numbers are not words
    assert words.share("42 + 7") is None


def test_a_missing_word_list_names_the_package(tmp_path):
    with pytest.raises(WordListMissing, match="apt-get install -y wamerican"):
        WordList(tmp_path / "no-such-list")


def digits_lm() -> tuple[ExactLM, dict[str, int]]:
    """An exact LM over printable characters: after "1" it says "0" with probability 1/4; anywhere
    else "1" has 0.4, "5" 0.2, "9" 0.2 and every other token an equal share of the rest."""
    chars = list(dict.fromkeys(c for c in string.printable if c not in "\r\x0b\x0c"))
    ids = {c: i for i, c in enumerate(chars)}
    base = np.full(len(chars) + 1, 0.2 / (len(chars) - 2))  # the vocabulary is the characters and EOS
    base[[ids["1"], ids["5"], ids["9"]]] = [0.4, 0.2, 0.2]
    after_one = base.copy()
    after_one[ids["0"]] = 0.25
    after_one[np.arange(len(after_one)) != ids["0"]] *= 0.75 / (1 - base[ids["0"]])

    def next_probs(context: tuple[int, ...]) -> np.ndarray:
        return after_one if context and context[-1] == ids["1"] else base

    return ExactLM(chars, next_probs=next_probs), ids


def test_expected_score_and_loglik_are_read_exactly(words):
    lm, ids = digits_lm()
    judge = CoherenceJudge(lm, words=words)
    text = "A cat sat."
    score = judge.score(text)
    u = 0.2 / (len(ids) - 2)  # each of 2, 3, 4, 6, 7, 8
    p = {1: 0.4 * 0.75, 10: 0.4 * 0.25, 5: 0.2, 9: 0.2, **{k: u for k in (2, 3, 4, 6, 7, 8)}}
    mass = sum(p.values())
    assert score.judge_mass == pytest.approx(mass)
    assert score.coherency == pytest.approx(sum(k * v for k, v in p.items()) / mass)
    expected_lps = [math.log(u)] * len(text)  # no "1" inside or before the text changes the distribution
    assert score.n_tokens == len(text)
    assert score.loglik_per_token == pytest.approx(np.mean(expected_lps))
    assert score.word_share == 1.0 and score.all_words_known is True


def test_empty_answers_are_not_scored(words):
    lm, _ = digits_lm()
    empty = CoherenceJudge(lm, words=words).score_many([None, "  "])
    assert all(s.coherency is None and s.word_share is None for s in empty)
    assert summarize(empty) == {"coherency": None, "loglik_per_token": None, "word_share": None, "all_words_known": None}


@pytest.mark.slow
def test_smollm2_as_judge_rates_fluent_english_above_word_salad(lm, words, one_thread):
    scores = CoherenceJudge(lm, words=words).score_many(FLUENT + SALAD)
    fluent, salad = summarize(scores[:2]), summarize(scores[2:])
    assert fluent["loglik_per_token"] > salad["loglik_per_token"] + 1.0
    assert fluent["word_share"] == 1.0 and salad["word_share"] < 0.6
    for s in scores:
        assert 1.0 <= s.coherency <= 10.0 and 0.0 < s.judge_mass <= 1.0


@pytest.mark.slow
def test_qwen_coder_judge_prefers_fluent_text():
    if default_judge_name() != "qwen-coder":
        pytest.skip("the Qwen2.5-Coder judge is not downloaded: selfsteer planner download qwen-coder")
    import torch

    torch.set_num_threads(1)
    judge = load_judge("qwen-coder")
    scores = judge.score_many(FLUENT + SALAD)
    fluent, salad = summarize(scores[:2]), summarize(scores[2:])
    assert all(s.judge_mass > 0.9 for s in scores)  # the judge answers with a number
    assert fluent["coherency"] > salad["coherency"]
    assert fluent["loglik_per_token"] > salad["loglik_per_token"] + 2.0
