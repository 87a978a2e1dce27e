"""Outcome-based exploration (arXiv 2509.06941): bonuses on *answers*, not tokens.

Historical (UCB) bonus. ``N(x, a)`` counts how often answer a was sampled for question x over the
whole run (kept in the question's ``state["answer_counts"]``, so it is checkpointed). The current
group is counted first, so ``N >= 1``:

.. math::

    b_{ucb}(x, a) = \\min(1, \\sqrt{1 / N(x, a)}),\\qquad A_i \\leftarrow A_i + c\\,(b_i - \\text{baseline})

with baseline 0 (``ucb``), the group's mean bonus (``ucb_mean``: bonuses sum to 0 per group) or
a constant ``b0`` (``ucb_con``: an answer seen more than ``1/b0^2`` times is penalised).

Batch bonus (``batch``): penalise repeats within the group,
``b_i = -(1/G) sum_{j != i} 1[a_i = a_j]`` (0 iff the answer is unique, ``-(k-1)/G`` for k copies).
Samples without an extracted answer get no bonus and are not counted. ``c = 0`` is plain GRPO.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..advantages import group_mean, group_z
from ..rollout import Sample
from ..schema import ConfigError
from .recipe import CORRECTNESS, Recipe

COUNTS_KEY = "answer_counts"


def ucb_bonus(n: np.ndarray | int) -> np.ndarray:
    """``min(1, sqrt(1/N))``; N < 1 is treated as 1."""
    n = np.maximum(np.asarray(n, dtype=np.float64), 1.0)
    return np.minimum(1.0, np.sqrt(1.0 / n))


def update_counts(state: dict, answers: Sequence[str | None]) -> np.ndarray:
    """Add this group's answers to ``state``'s counts; returns N(x, a_i) after the update (0 for None)."""
    counts = state.setdefault(COUNTS_KEY, {})
    for a in answers:
        if a is not None:
            counts[a] = counts.get(a, 0) + 1
    return np.array([counts[a] if a is not None else 0 for a in answers], dtype=np.float64)


def batch_bonus(answers: Sequence[str | None]) -> np.ndarray:
    """``-(1/G) * (number of other samples with the same answer)``; 0 for missing answers."""
    g = len(answers)
    copies = Counter(a for a in answers if a is not None)
    return np.array([-(copies[a] - 1) / g if a is not None else 0.0 for a in answers])


def historical_bonus(state: dict, answers: Sequence[str | None], *, variant: str, b0: float) -> np.ndarray:
    """Update the counts, then the UCB bonus of each sample minus the variant's baseline."""
    n = update_counts(state, answers)
    has = np.array([a is not None for a in answers])
    bonus = np.where(has, ucb_bonus(n), 0.0)
    if variant == "ucb":
        return bonus
    if variant == "ucb_mean":
        return bonus - bonus.mean()
    if variant == "ucb_con":
        return np.where(has, bonus - b0, 0.0)
    raise ValueError(f"unknown UCB variant {variant!r}")


def exploration_advantages(
    rewards: np.ndarray, groups: Sequence[Sequence[Sample]], *, variant: str, c: float, b0: float, scale_rewards: str
) -> np.ndarray:
    """The advantage hook: GRPO advantages plus ``c`` times the bonus (counts update as a side effect)."""
    base = group_z(rewards) if scale_rewards == "group" else group_mean(rewards)
    bonus = np.zeros_like(base)
    for b, group in enumerate(groups):
        answers = [s.answer for s in group]
        if variant == "batch":
            bonus[b] = batch_bonus(answers)
        else:
            bonus[b] = historical_bonus(group[0].state, answers, variant=variant, b0=b0)
    return base + c * bonus


@dataclass(frozen=True)
class ExplorationParams:
    """Outcome-based exploration settings (paper defaults: c = 0.2, b0 = 0.5 on harder data)."""

    variant: Literal["ucb", "ucb_mean", "ucb_con", "batch"] = "ucb_con"
    c: float = 0.2  # bonus weight
    b0: float = 0.5  # constant baseline of ucb_con
    scale_rewards: Literal["group", "none"] = "group"

    def check(self, config) -> None:
        if self.c < 0:
            raise ConfigError(f"objective.c must be >= 0, got {self.c}")
        if not 0 < self.b0 <= 1:
            raise ConfigError(f"objective.b0 must lie in (0, 1], got {self.b0}")


def build(params: ExplorationParams, config, task) -> Recipe:
    def advantage(rewards, groups):
        return exploration_advantages(rewards, groups, variant=params.variant, c=params.c, b0=params.b0,
                                      scale_rewards=params.scale_rewards)

    return Recipe(f"exploration-{params.variant}", CORRECTNESS, advantage)
