"""Group advantages: ``(B, G)`` rewards in, ``(B, G)`` advantages out.

Row b holds the G samples of question b. Every function here is pure; objectives compose them
with their own terms (a bonus, a shifted baseline) in the advantage hook (`objectives`).

.. math::

    \\text{group\\_z}:\\ A_i = (r_i - \\mu) / (\\sigma + \\epsilon) \\quad \\text{(GRPO)}\\qquad
    \\text{group\\_mean}:\\ A_i = r_i - \\mu \\quad \\text{(Dr.GRPO)}\\qquad
    \\text{leave\\_one\\_out}:\\ A_i = r_i - \\tfrac{1}{G-1}\\sum_{j \\ne i} r_j \\quad \\text{(RLOO)}

with the group mean μ and the unbiased group standard deviation σ (TRL's convention);
``batch_z`` divides by the standard deviation of the whole batch instead, and ``none`` uses the
rewards as they are.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

EPS = 1e-4  # added to the standard deviation, as in TRL


def _rows(rewards: np.ndarray) -> np.ndarray:
    r = np.asarray(rewards, dtype=np.float64)
    if r.ndim != 2 or r.shape[1] < 1:
        raise ValueError(f"rewards must have shape (B, G), got {r.shape}")
    return r


def group_mean(rewards: np.ndarray) -> np.ndarray:
    """``r - mean(group)``: zero-sum per group."""
    r = _rows(rewards)
    return r - r.mean(axis=1, keepdims=True)


def group_std(rewards: np.ndarray) -> np.ndarray:
    """Unbiased standard deviation of each group, shape (B, 1); 0 for groups of one."""
    r = _rows(rewards)
    if r.shape[1] < 2:
        return np.zeros((r.shape[0], 1))
    return r.std(axis=1, ddof=1, keepdims=True)


def group_z(rewards: np.ndarray, eps: float = EPS) -> np.ndarray:
    """GRPO: ``(r - mean) / (std + eps)`` per group; all-equal groups give zeros."""
    return group_mean(rewards) / (group_std(rewards) + eps)


def batch_z(rewards: np.ndarray, eps: float = EPS) -> np.ndarray:
    """``(r - group mean) / (std of the whole batch + eps)`` (TRL ``scale_rewards="batch"``)."""
    r = _rows(rewards)
    std = r.std(ddof=1) if r.size > 1 else 0.0
    return group_mean(r) / (std + eps)


def leave_one_out(rewards: np.ndarray) -> np.ndarray:
    """RLOO: each reward minus the mean of the other G-1 in its group (``G/(G-1) * (r - mean)``)."""
    r = _rows(rewards)
    g = r.shape[1]
    if g < 2:
        raise ValueError("leave_one_out needs groups of at least 2")
    return (r - r.mean(axis=1, keepdims=True)) * g / (g - 1)


def no_baseline(rewards: np.ndarray) -> np.ndarray:
    """The rewards themselves (plain REINFORCE)."""
    return _rows(rewards).copy()


ADVANTAGES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "group_z": group_z,
    "group_mean": group_mean,
    "batch_z": batch_z,
    "leave_one_out": leave_one_out,
    "none": no_baseline,
}


def get_advantage(name: str) -> Callable[[np.ndarray], np.ndarray]:
    """The advantage function registered as ``name`` (the error lists the valid names)."""
    if name not in ADVANTAGES:
        raise ValueError(f"unknown advantage {name!r}; choose one of {sorted(ADVANTAGES)}")
    return ADVANTAGES[name]
