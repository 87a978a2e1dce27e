"""LENS (arXiv 2510.08696): confidence-weighted penalties for incorrect samples.

With binary rewards r_i, the length-normalised sampling probability
``p̄_i = pi_old(o_i | q)^(1/|o_i|)`` (the geometric-mean token probability) and a per-group
estimate D of the normaliser, the reward of a sample becomes

.. math::

    \\tilde r_i = r_i - (1 - r_i) \\frac{1}{G} \\frac{\\bar p_i}{D - \\bar p_i},
    \\qquad D = \\max(\\hat D_{imp},\\ 2 \\max_j \\bar p_j)\\ \\text{(mixed group)},
    \\quad D = 2 \\max_j \\bar p_j\\ \\text{(all incorrect)},

    \\hat D_{imp} = \\Big[\\tfrac{1}{G} \\sum_i r_i / \\bar p_i\\Big]^{-1}.

Since ``D >= 2 max p̄``, an incorrect sample's reward lies in ``[-1/G, 0]`` and falls as its
confidence p̄ rises; correct samples keep 1. Mixed groups get the usual GRPO z-score of r̃;
all-incorrect groups (where GRPO's advantages are all zero) are de-meaned only and weighted by
α, i.e. ``J = J_GRPO[mixed] + α J_GRPO[negative]``; all-correct groups give zeros.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..advantages import group_z
from ..rollout import Sample
from ..schema import ConfigError
from .recipe import CORRECTNESS, Recipe


def estimate_d(correct: np.ndarray, p_bar: np.ndarray) -> float:
    """The group's D: the importance estimate floored at twice the largest p̄ (see module)."""
    correct = np.asarray(correct, dtype=np.float64)
    p_bar = np.asarray(p_bar, dtype=np.float64)
    floor = 2.0 * float(p_bar.max())
    if correct.sum() == 0:
        return floor
    d_imp = 1.0 / float(np.mean(correct / p_bar))
    return max(d_imp, floor)


def lens_rewards(correct: np.ndarray, p_bar: np.ndarray, d: float | None = None) -> np.ndarray:
    """Calibrated rewards r̃ (G,) of one group; ``d`` defaults to `estimate_d`."""
    correct = np.asarray(correct, dtype=np.float64)
    p_bar = np.asarray(p_bar, dtype=np.float64)
    if np.any(p_bar <= 0) or np.any(p_bar > 1):
        raise ValueError("p̄ must lie in (0, 1]")
    g = correct.size
    d = estimate_d(correct, p_bar) if d is None else d
    if d <= p_bar.max():
        raise ValueError(f"D = {d} must exceed every p̄ (max {p_bar.max()})")
    return correct - (1 - correct) * (1.0 / g) * p_bar / (d - p_bar)


def w(z: np.ndarray | float) -> np.ndarray:
    """The paper's negative-sample weight ``w(z) = (1/z) log(1/(1-z)) - 1`` on (0, 1), w(0) = 0."""
    z = np.asarray(z, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = -np.log1p(-z) / z - 1.0
    return np.where(z == 0, 0.0, out)


def lens_advantages(rewards: np.ndarray, groups: Sequence[Sequence[Sample]], *, alpha: float) -> np.ndarray:
    """The LENS advantage hook: (B, G) binary rewards and the groups' samples in, advantages out."""
    rewards = np.asarray(rewards, dtype=np.float64)
    adv = np.zeros_like(rewards)
    for b, group in enumerate(groups):
        correct = (rewards[b] > 0.5).astype(np.float64)
        p_bar = np.exp(np.array([s.mean_logprob for s in group]))
        tilde = lens_rewards(correct, p_bar)
        if correct.all():
            continue  # nothing to learn: zeros, as in GRPO
        if correct.any():
            adv[b] = group_z(tilde[None, :])[0]
        else:
            adv[b] = alpha * (tilde - tilde.mean())
    return adv


@dataclass(frozen=True)
class LensParams:
    """LENS settings."""

    alpha: float = 0.25  # weight of the all-incorrect groups' loss

    def check(self, config) -> None:
        if self.alpha < 0:
            raise ConfigError(f"objective.alpha must be >= 0, got {self.alpha}")


def build(params: LensParams, config, task) -> Recipe:
    def advantage(rewards, groups):
        return lens_advantages(rewards, groups, alpha=params.alpha)

    return Recipe("lens", CORRECTNESS, advantage)
