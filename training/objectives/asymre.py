"""AsymRE (arXiv 2506.20520): off-policy REINFORCE with a shifted baseline.

.. math::

    J(\\pi) = \\mathbb{E}_{y \\sim \\mu}[\\log \\pi(y)\\,(r(y) - V)],\\qquad V = \\bar r_{group} + \\delta

No importance ratio, no clipping. On-policy, V only changes the variance; off-policy (samples
from a behaviour policy μ, e.g. several updates per batch) it moves the fixed point: with
``V < V^μ = E_μ[r]`` the tabular softmax dynamics keep every arm with ``r > V`` alive
(``π*(y) ∝ μ(y)(r(y) - V)``), while ``V > V^μ`` collapses the support, often to one arm.
Hence the default δ = -0.1: weight positives a little more than negatives.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .recipe import CORRECTNESS, Recipe


def asymre_advantages(rewards: np.ndarray, delta: float) -> np.ndarray:
    """``r - (group mean + delta)``: sums to ``-G * delta`` per group."""
    r = np.asarray(rewards, dtype=np.float64)
    return r - (r.mean(axis=1, keepdims=True) + delta)


@dataclass(frozen=True)
class AsymREParams:
    """AsymRE settings."""

    delta: float = -0.1  # baseline shift: V = group mean + delta


def build(params: AsymREParams, config, task) -> Recipe:
    def advantage(rewards, groups):
        return asymre_advantages(rewards, params.delta)

    return Recipe("asymre", CORRECTNESS, advantage, loss="reinforce")
