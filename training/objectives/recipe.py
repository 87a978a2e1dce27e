"""`Recipe`: an RL objective as data (rewards, an advantage hook, a loss, a rollout program).

A new objective is a recipe, not a trainer: the loop (`selfsteer.training.rl`) runs

    groups  = rollout(program, questions)                         # B lists of G Samples
    rewards = score(samples, recipe.rewards)                      # (B, G)
    adv     = recipe.advantage(rewards, groups)                   # (B, G): the advantage hook
    loss    = LOSSES[recipe.loss](logp, old_logp, adv) -> aggregate(recipe.agg)

The advantage hook sees the groups' samples (their answers, sampling log-probabilities,
truncation flags and per-question ``state``), so LENS, exploration bonuses and shifted baselines
are advantage hooks; the loss never changes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..advantages import get_advantage
from ..rewards import RewardFn, correctness
from ..rollout import ProgramFn, PromptFn, Rollout, Sample

AdvantageFn = Callable[[np.ndarray, Sequence[Sequence[Sample]]], np.ndarray]


@dataclass(frozen=True)
class Recipe:
    """An RL objective. ``token_limit(step)`` gives L for that step (a schedule for ThinkPrune);
    ``stage(step)`` numbers training stages (the optimiser restarts at each new stage)."""

    name: str
    rewards: tuple[tuple[str, RewardFn, float], ...]
    advantage: AdvantageFn
    loss: str = "clipped"
    agg: str = "token"
    program: ProgramFn = Rollout
    prompt: PromptFn | None = None  # None: the run's sampling.prompt
    token_limit: Callable[[int], int] | None = None
    stage: Callable[[int], int] | None = None

    def limit(self, step: int, default: int) -> int:
        return default if self.token_limit is None else int(self.token_limit(step))

    def stage_of(self, step: int) -> int:
        return 0 if self.stage is None else int(self.stage(step))


def scaled(scale_rewards: str) -> AdvantageFn:
    """The GRPO advantage hook with TRL's ``scale_rewards``: group (z-score), batch, or none."""
    name = {"group": "group_z", "batch": "batch_z", "none": "group_mean"}[scale_rewards]
    fn = get_advantage(name)

    def advantage(rewards: np.ndarray, groups: Sequence[Sequence[Sample]]) -> np.ndarray:
        return fn(rewards)

    advantage.__name__ = f"advantage_{name}"
    return advantage


CORRECTNESS: tuple[tuple[str, RewardFn, float], ...] = (("correct", correctness, 1.0),)
