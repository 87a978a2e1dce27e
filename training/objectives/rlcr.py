"""RLCR (arXiv 2507.16806): reward correctness *and* a calibrated verbalised confidence.

Completions carry ``<answer>A</answer>`` and ``<confidence>q</confidence>`` tags, read by
`selfsteer.smc.scaling.answers.parse_tagged` (the last of each wins), the same reader inference
uses. The format gate passes only when both are present, the answer is readable and q follows the
confidence rule of that module (a number in [0, 1], or a percentage such as "80%"). The reward follows the official code's three weighted terms (0.5 each):

.. math::

    R = w_f \\cdot 1[\\text{formatted}] + 1[\\text{formatted}] (w_a c + w_b (1 - (c - q)^2)),
    \\qquad c = 1[\\text{answer correct}]

so an unformatted completion earns 0 and every formatted one earns at least ``w_f``. The Brier
term ``1 - (c - q)^2`` is a bounded proper scoring rule: with ``c ~ Bernoulli(p)`` its expectation
is maximised at ``q = p`` (derivative ``2(p - q)``), the paper's calibration guarantee.

`ConfidenceRollout` is a rollout program that makes the format structural: it forces
``<answer>``, samples the answer up to ``</answer>`` or a newline (then closing the tag), forces
``<confidence>0.`` and samples one
digit restricted to 0-9 (so q is in {0.0, ..., 0.9}). At test time the population is voted with
`selfsteer.smc.scaling.vote_answers` ("max_confidence" or "confidence").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from selfsteer.smc.scaling.answers import parse_tagged

from ..rollout import Rollout, Sample
from .recipe import Recipe, scaled


def format_reward(sample: Sample) -> float:
    """1 when the completion passes the format gate (and a readable answer was extracted)."""
    return 1.0 if parse_tagged(sample.text).formatted and sample.answer is not None else 0.0


def accuracy_reward(sample: Sample) -> float:
    """Correctness, gated by the format."""
    return 1.0 if format_reward(sample) and sample.correct else 0.0


def brier_reward(sample: Sample) -> float:
    """``1 - (c - q)^2``, gated by the format (0 when unformatted)."""
    if not format_reward(sample):
        return 0.0
    q = parse_tagged(sample.text).confidence
    c = 1.0 if sample.correct else 0.0
    return 1.0 - (c - q) ** 2


def expected_reward(q: float, p: float) -> float:
    """``E_{c~Bern(p)}[c - (q - c)^2]``, the paper's RLCR reward in expectation."""
    return p * (1 - (q - 1) ** 2) + (1 - p) * (-(q**2))


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
