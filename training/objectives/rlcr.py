"""RLCR (arXiv 2507.16806): reward correctness *and* a calibrated verbalised confidence.

Completions carry ``<answer>A</answer>`` and ``<confidence>q</confidence>`` tags (the last of
each wins). The format gate passes only when both are present, the answer is readable and q is
a number in [0, 1]. The reward follows the official code's three weighted terms (0.5 each):

.. math::

    R = w_f \\cdot 1[\\text{formatted}] + 1[\\text{formatted}] (w_a c + w_b (1 - (c - q)^2)),
    \\qquad c = 1[\\text{answer correct}]

so an unformatted completion earns 0 and every formatted one earns at least ``w_f``. The Brier
term ``1 - (c - q)^2`` is a bounded proper scoring rule: with ``c ~ Bernoulli(p)`` its expectation
is maximised at ``q = p`` (derivative ``2(p - q)``), the paper's calibration guarantee.

`ConfidenceRollout` is a rollout program that makes the format structural: it forces
``<answer>``, samples the answer up to ``</answer>`` or a newline (then closing the tag), forces
``<confidence>0.`` and samples one
digit restricted to 0-9 (so q is in {0.0, ..., 0.9}). Test-time aggregators: `max_confidence`
and `confidence_weighted_vote`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from ..rollout import Rollout, Sample
from .recipe import Recipe, scaled

CONFIDENCE_TAG = re.compile(r"<confidence>(.*?)</confidence>", re.DOTALL)
ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


@dataclass(frozen=True)
class Parsed:
    """What the format gate read from a completion."""

    answer_text: str | None
    confidence: float | None

    @property
    def formatted(self) -> bool:
        return self.answer_text is not None and self.answer_text.strip() != "" and self.confidence is not None


def parse_confidence(text: str) -> float | None:
    """The last ``<confidence>`` value if it is a number in [0, 1], else None."""
    tags = CONFIDENCE_TAG.findall(text)
    if not tags:
        return None
    try:
        q = float(tags[-1].strip())
    except ValueError:
        return None
    return q if 0.0 <= q <= 1.0 else None


def parse(text: str) -> Parsed:
    """Read the last answer and confidence tags."""
    answers = ANSWER_TAG.findall(text)
    return Parsed(answers[-1] if answers else None, parse_confidence(text))


def format_reward(sample: Sample) -> float:
    """1 when the completion passes the format gate (and a readable answer was extracted)."""
    return 1.0 if parse(sample.text).formatted and sample.answer is not None else 0.0


def accuracy_reward(sample: Sample) -> float:
    """Correctness, gated by the format."""
    return 1.0 if format_reward(sample) and sample.correct else 0.0


def brier_reward(sample: Sample) -> float:
    """``1 - (c - q)^2``, gated by the format (0 when unformatted)."""
    if not format_reward(sample):
        return 0.0
    q = parse(sample.text).confidence
    c = 1.0 if sample.correct else 0.0
    return 1.0 - (c - q) ** 2


def expected_reward(q: float, p: float) -> float:
    """``E_{c~Bern(p)}[c - (q - c)^2]``, the paper's RLCR reward in expectation."""
    return p * (1 - (q - 1) ** 2) + (1 - p) * (-(q**2))


def max_confidence(answers: Sequence[str | None], confidences: Sequence[float | None]) -> str | None:
    """The answer with the highest stated confidence (first on ties; unparsed ones skipped)."""
    best, best_q = None, -1.0
    for a, q in zip(answers, confidences, strict=True):
        if a is not None and q is not None and q > best_q:
            best, best_q = a, q
    return best


def confidence_weighted_vote(answers: Sequence[str | None], confidences: Sequence[float | None]) -> str | None:
    """``argmax_a sum_i q_i 1[a_i = a]`` (first answer seen wins ties)."""
    scores: dict[str, float] = {}
    for a, q in zip(answers, confidences, strict=True):
        if a is not None and q is not None:
            scores[a] = scores.get(a, 0.0) + q
    return max(scores, key=scores.get) if scores else None


class ConfidenceRollout(Rollout):
    """``<answer>`` sampled answer ``</answer><confidence>0.d</confidence>`` with d a sampled digit."""

    async def step(self) -> None:
        masks = self.ctx.lm.masks
        digit = masks.where("single_digit", lambda t: len(t) == 1 and t.isdigit())
        await self.force("<answer>")
        answer = await self.generate(stop=("</answer>", "\n"))
        if answer and "</answer>" not in answer:
            await self.force("</answer>")  # the answer ended at a newline: close the tag
        if "</answer>" in self.text:
            await self.force("<confidence>0.")
            await self.choose(digit)
            await self.force("</confidence>")
        self.finish(self.text)


@dataclass(frozen=True)
class RLCRParams:
    """RLCR settings (weights as in the official code)."""

    format_weight: float = 0.5
    accuracy_weight: float = 0.5
    brier_weight: float = 0.5
    scale_rewards: Literal["group", "batch", "none"] = "none"  # the official runs use no std scaling


def build(params: RLCRParams, config, task) -> Recipe:
    rewards = (
        ("format", format_reward, params.format_weight),
        ("accuracy", accuracy_reward, params.accuracy_weight),
        ("brier", brier_reward, params.brier_weight),
    )
    return Recipe("rlcr", rewards, scaled(params.scale_rewards), program=ConfidenceRollout)
