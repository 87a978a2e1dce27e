"""The baseline recipes: GRPO, Dr.GRPO, RLOO and plain REINFORCE, all with a correctness reward.

- ``grpo``: z-scored group advantages (``scale_rewards`` group/batch/none), clipped ratio,
  token aggregation over the whole step (TRL's default ``dapo``).
- ``dr_grpo``: no std scaling, ``constant`` aggregation (sum / (sequences * L)).
- ``rloo``: leave-one-out baseline, clipped ratio.
- ``reinforce``: ratio-free REINFORCE with a group-mean (or leave-one-out, or no) baseline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..advantages import get_advantage
from .recipe import CORRECTNESS, Recipe, scaled


@dataclass(frozen=True)
class GRPOParams:
    """GRPO settings."""

    scale_rewards: Literal["group", "batch", "none"] = "group"


@dataclass(frozen=True)
class NoParams:
    """This objective has no settings of its own."""


@dataclass(frozen=True)
class ReinforceParams:
    """REINFORCE settings."""

    baseline: Literal["group_mean", "leave_one_out", "none"] = "group_mean"


def build_grpo(params: GRPOParams, config, task) -> Recipe:
    return Recipe("grpo", CORRECTNESS, scaled(params.scale_rewards))


def build_dr_grpo(params: NoParams, config, task) -> Recipe:
    return Recipe("dr_grpo", CORRECTNESS, scaled("none"), agg="constant")


def build_rloo(params: NoParams, config, task) -> Recipe:
    fn = get_advantage("leave_one_out")
    return Recipe("rloo", CORRECTNESS, lambda rewards, groups: fn(rewards))


def build_reinforce(params: ReinforceParams, config, task) -> Recipe:
    fn = get_advantage(params.baseline)
    return Recipe("reinforce", CORRECTNESS, lambda rewards, groups: fn(rewards), loss="reinforce")
