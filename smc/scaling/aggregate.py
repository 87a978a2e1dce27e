"""Answer aggregation over a population of particles.

Each finished, live particle may carry a final answer ``a_i`` (found by an answer hook), a
stated confidence ``q_i`` in [0, 1] and a log-weight ``log_w_i``. An aggregator scores every
distinct answer and returns the best:

- ``majority``: ``score(a) = #{i : a_i = a}``;
- ``confidence``: ``score(a) = sum_i q_i 1[a_i = a]`` (RLCR's confidence-weighted vote; a particle
  without a stated confidence does not vote; the importance weights are ignored, so this is a vote
  of the population, not an estimate under the SMC posterior);
- ``max_confidence``: ``score(a) = max_i q_i 1[a_i = a]`` (the answer of the most confident particle);
- ``likelihood``: ``score(a) = sum_i w_i 1[a_i = a]`` with ``w`` the normalised importance weights,
  i.e. the answer marginal of the SMC posterior.

Ties are broken by the number of votes, then by the earliest particle, so the order is
deterministic. With equal positive confidences the ``confidence`` vote ranks answers exactly as
``majority`` does (every score is scaled by the same q).
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

NUMBER = re.compile(r"[-+]?\d[\d,]*(\.\d+)?|[-+]?\.\d+")
EDGE_PUNCTUATION = " \t\n\"'`.,;:!?()[]{}*"


def canonical_answer(value: Any) -> Hashable | None:
    """A normal form for comparing answers: numbers as plain decimals ("12.0" -> "12", "1,000" -> "1000"),
    other text stripped of surrounding punctuation, whitespace collapsed and case-folded.

    Empty text gives None (no answer); non-text values are returned as they are if hashable.
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


def vote(
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


def vote_result(result: Result, method: str = "majority", *, answer_fn: AnswerFn | None = None) -> Vote:
    """Aggregate a run's finished particles (confidences from `stated_confidence`)."""
    return vote(
        final_answers(result, answer_fn),
        method,
        confidences=[stated_confidence(p) for p in result.particles],
        log_weights=result.log_weights,
    )
