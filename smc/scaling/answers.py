"""Answers, one module for everyone: RLCR's tags read, answers canonicalised, populations voted.

Programs (`AnswerWithConfidence`), test-time scaling (votes, exploration, metrics) and training
(the task checker, RLCR's format gate and rewards) all read answers through this module, so an
answer or a confidence means the same thing at inference and in training.

Tags. A response in RLCR's format ends with ``<answer>A</answer>`` and ``<confidence>q</confidence>``.
`parse_tagged` reads them; the last tag of each kind wins. A missing or blank answer reads as None.

Confidence rule (`parse_confidence`). q is a decimal number in [0, 1] ("0.8"), or a percentage in
[0, 100] written with a trailing "%" ("80%" reads as 0.8). Anything else (missing, not a number,
nan, inf, outside the range) is a format failure and reads as None. RLCR's format gate uses the
same rule, so "80%" earns the format reward exactly when inference reads it as 0.8.

Canonical form (`canonical_answer`). Numbers become plain decimals: "07", "7.0", "+7" and " 7." all
read "7"; a comma is a thousands separator only in groups of three ("1,000" reads "1000", while
"1,2,3" stays text). Other text is stripped of surrounding punctuation, its whitespace collapsed
and case-folded. Empty text is None: no answer.

Votes. Each finished, live particle may carry a final answer ``a_i`` (found by an answer hook), a
stated confidence ``q_i`` in [0, 1] and a log-weight ``log_w_i``. An aggregator scores every
distinct answer and returns the best:

- ``majority``: ``score(a) = #{i : a_i = a}``;
- ``confidence``: ``score(a) = sum_i q_i 1[a_i = a]`` (RLCR's confidence-weighted vote; a particle
  without a stated confidence does not vote; the importance weights are ignored, so this is a vote
  of the population, not an estimate under the SMC posterior);
- ``max_confidence``: ``score(a) = max_i q_i 1[a_i = a]`` (the answer of the most confident particle);
- ``likelihood``: ``score(a) = sum_i w_i 1[a_i = a]`` with ``w`` the normalised importance weights,
  i.e. the answer marginal of the SMC posterior.

None is never an answer: it casts no vote and is not a distinct answer. Ties are broken by the
number of votes, then by the earliest particle, so the order is deterministic; an answer wins only
with a positive score. With equal positive confidences the ``confidence`` vote ranks answers
exactly as ``majority`` does (every score is scaled by the same q).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import numpy as np

from ..weights import normalise

if TYPE_CHECKING:
    from ..model import Model
    from ..result import Result

AnswerFn = Callable[["Model"], Hashable | None]

ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
CONFIDENCE_TAG = re.compile(r"<confidence>(.*?)</confidence>", re.DOTALL)
DIGITS = r"(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)"  # thousands separated in groups of three, or plain
NUMBER = re.compile(rf"[-+]?{DIGITS}(?:\.\d+)?|[-+]?\.\d+")
NUMBER_IN_TEXT = re.compile(rf"-?{DIGITS}(?:\.\d+)?")
EDGE_PUNCTUATION = " \t\n\"'`.,;:!?()[]{}*"


@dataclass(frozen=True)
class Tagged:
    """What a tagged response states: its reasoning (text before the last answer tag), answer and
    confidence (None where the format failed)."""

    reasoning: str
    answer: str | None
    confidence: float | None

    @property
    def formatted(self) -> bool:
        """Both an answer and a valid confidence were stated (RLCR's format gate)."""
        return self.answer is not None and self.confidence is not None


def parse_confidence(text: str) -> float | None:
    """``text`` as a confidence in [0, 1] by the confidence rule of the module docstring, else None."""
    t = text.strip()
    scale = 1.0
    if t.endswith("%"):
        t, scale = t[:-1].strip(), 0.01
    try:
        q = float(t) * scale
    except ValueError:
        return None
    return q if math.isfinite(q) and 0.0 <= q <= 1.0 else None


def parse_tagged(text: str) -> Tagged:
    """Read the last ``<answer>`` and ``<confidence>`` tags of ``text`` (see the module docstring)."""
    answers = list(ANSWER_TAG.finditer(text))
    confidences = CONFIDENCE_TAG.findall(text)
    answer = answers[-1].group(1).strip() if answers else None
    reasoning = text[: answers[-1].start()].strip() if answers else text.strip()
    confidence = parse_confidence(confidences[-1]) if confidences else None
    return Tagged(reasoning, answer or None, confidence)


def canonical_answer(value: Any) -> Hashable | None:
    """A normal form for comparing answers (see the module docstring): "12.0" -> "12",
    "1,000" -> "1000", " The Eiffel tower! " -> "the eiffel tower", "" -> None.

    Non-text values are returned as they are if hashable, else as their ``repr``.
    """
    if value is None:
        return None
    if not isinstance(value, str):
        try:
            hash(value)
            return value
        except TypeError:
            return repr(value)
    text = " ".join(unicodedata.normalize("NFKC", value).split()).strip(EDGE_PUNCTUATION)
    if NUMBER.fullmatch(text):
        try:
            number = Decimal(text.replace(",", "").lstrip("+"))
        except InvalidOperation:
            return text.casefold() or None
        if number == number.to_integral_value():
            return str(int(number))
        return format(number.normalize(), "f")
    return text.casefold() or None


def last_number(text: str) -> str | None:
    """The last number written in ``text``, canonical ("it is 1,000." -> "1000"); None if there is none."""
    numbers = NUMBER_IN_TEXT.findall(text)
    return canonical_answer(numbers[-1]) if numbers else None


def revealed_answer(particle: Model) -> Hashable | None:
    """The particle's answer as soon as it is known: its ``answer`` attribute if set, else the
    canonical form of its output once finished; None for dead particles and before an answer."""
    if not particle.alive:
        return None
    answer = getattr(particle, "answer", None)
    if answer is not None:
        return canonical_answer(answer)
    return canonical_answer(particle.output) if particle.finished else None


def stated_confidence(particle: Model) -> float | None:
    """The particle's ``confidence`` attribute when it is a number in [0, 1], else None."""
    q = getattr(particle, "confidence", None)
    if isinstance(q, (int, float)) and not isinstance(q, bool) and 0.0 <= q <= 1.0:
        return float(q)
    return None


@dataclass(frozen=True)
class Vote:
    """The outcome of an aggregation.

    Attributes:
        answer: the winning answer, or None when no particle voted.
        scores: ``{answer: score}`` for every answer that received a vote, best first.
        method: the aggregator's name.
        n_voters: how many particles voted.
    """

    answer: Hashable | None
    scores: dict[Hashable, float]
    method: str
    n_voters: int

    @property
    def share(self) -> float:
        """The winner's score as a fraction of all scores (1.0 for unanimity; nan without votes)."""
        total = sum(self.scores.values())
        return self.scores[self.answer] / total if self.answer is not None and total > 0 else math.nan

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: answers that are not str/int/float appear as their ``repr``."""
        def plain(a: Any) -> Any:
            return a if a is None or isinstance(a, (str, int, float)) else repr(a)

        share = None if self.answer is None else self.share
        return {"method": self.method, "answer": plain(self.answer), "share": share, "n_voters": self.n_voters,
                "scores": [[plain(a), s] for a, s in self.scores.items()]}


def _rank(answers: Sequence[Hashable | None], per_particle: np.ndarray, combine: str, method: str) -> Vote:
    scores: dict[Hashable, float] = {}
    counts: dict[Hashable, int] = {}
    first: dict[Hashable, int] = {}
    for i, (a, s) in enumerate(zip(answers, per_particle, strict=True)):
        if a is None or not np.isfinite(s):
            continue
        if a not in scores:
            scores[a], counts[a], first[a] = float(s), 1, i
        else:
            scores[a] = scores[a] + float(s) if combine == "sum" else max(scores[a], float(s))
            counts[a] += 1
    order = sorted(scores, key=lambda a: (-scores[a], -counts[a], first[a]))
    ranked = {a: scores[a] for a in order}
    winner = order[0] if order and scores[order[0]] > 0 else None
    return Vote(winner, ranked, method, sum(counts.values()))


def majority_vote(answers: Sequence[Hashable | None]) -> Vote:
    """Plain majority over the particles that have an answer."""
    return _rank(answers, np.ones(len(answers)), "sum", "majority")


def confidence_vote(answers: Sequence[Hashable | None], confidences: Sequence[float | None]) -> Vote:
    """Confidence-weighted majority: each answer scores the sum of its particles' confidences."""
    q = np.array([np.nan if c is None else c for c in confidences], dtype=float)
    return _rank(answers, q, "sum", "confidence")


def max_confidence_vote(answers: Sequence[Hashable | None], confidences: Sequence[float | None]) -> Vote:
    """The answer of the most confident particle (each answer scores its highest confidence)."""
    q = np.array([np.nan if c is None else c for c in confidences], dtype=float)
    return _rank(answers, q, "max", "max_confidence")


def likelihood_vote(answers: Sequence[Hashable | None], log_weights: np.ndarray) -> Vote:
    """Importance-weighted vote: each answer scores its total normalised weight among the voters."""
    has = np.array([a is not None for a in answers], dtype=bool)
    log_w = np.where(has, np.asarray(log_weights, dtype=float), -np.inf)
    return _rank(answers, normalise(log_w), "sum", "likelihood")


AGGREGATORS = ("majority", "confidence", "max_confidence", "likelihood")


def vote_answers(
    answers: Sequence[Hashable | None],
    method: str = "majority",
    *,
    confidences: Sequence[float | None] | None = None,
    log_weights: np.ndarray | None = None,
) -> Vote:
    """Aggregate per-particle answers with one of `AGGREGATORS` (see the module docstring)."""
    if method == "majority":
        return majority_vote(answers)
    if method in ("confidence", "max_confidence"):
        if confidences is None:
            raise ValueError(f"the {method!r} vote needs per-particle confidences")
        fn = confidence_vote if method == "confidence" else max_confidence_vote
        return fn(answers, confidences)
    if method == "likelihood":
        if log_weights is None:
            raise ValueError("the 'likelihood' vote needs per-particle log-weights")
        return likelihood_vote(answers, log_weights)
    raise ValueError(f"unknown aggregation {method!r}; choose one of {list(AGGREGATORS)}")


def final_answers(result: Result, answer_fn: AnswerFn | None = None) -> list[Hashable | None]:
    """Per particle: its answer if it finished alive (``answer_fn``, default `revealed_answer`)."""
    fn = answer_fn or revealed_answer
    return [fn(p) if p.finished and p.alive else None for p in result.particles]


def vote(result: Result, method: str = "majority", *, answer_fn: AnswerFn | None = None) -> Vote:
    """Aggregate a run's finished particles with one of `AGGREGATORS`: "majority", "confidence",
    "max_confidence" or "likelihood" (confidences from `stated_confidence`)."""
    return vote_answers(
        final_answers(result, answer_fn),
        method,
        confidences=[stated_confidence(p) for p in result.particles],
        log_weights=result.log_weights,
    )
