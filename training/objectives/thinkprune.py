"""ThinkPrune (arXiv 2504.01296): a hard token limit, and a schedule that lowers it.

Generation is capped at L sampled tokens; a completion that has not finished by then is
truncated and earns 0, however right its partial text looks (no soft overlong shaping, no
masking of truncated samples: the opposite of DAPO's choice). Otherwise the reward is
correctness. The prompt states the budget ("The output of the assistant should be within L
tokens."). Iterative pruning trains in stages with decreasing limits, e.g. 64 -> 48 -> 32: each
stage starts from the weights the previous stage ended with, with a fresh optimiser (a new run
in the paper), and the stage's final weights are exported to ``out_dir/stages/stage-k``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..advantages import group_z
from ..questions import Question
from ..rewards import complete_and_correct
from ..rollout import PROMPTS, PromptFn
from ..schema import ConfigError
from .recipe import Recipe


def budget_sentence(limit: int) -> str:
    return f" The output of the assistant should be within {limit} tokens."


def with_budget(prompt: PromptFn) -> PromptFn:
    """A prompt function that appends the token budget to the question text."""

    def budgeted(question: Question, limit: int):
        return prompt(dataclasses.replace(question, prompt=question.prompt + budget_sentence(limit)), limit)

    return budgeted


@dataclass(frozen=True)
class ThinkPruneParams:
    """ThinkPrune settings."""

    schedule: tuple[int, ...] = ()  # token limits per stage, strictly decreasing (empty: sampling.max_tokens)
    steps_per_stage: int | None = None  # None: optim.steps split evenly over the stages

    def limits(self, config) -> tuple[int, ...]:
        return self.schedule or (config.sampling.max_tokens,)

    def stage_length(self, config) -> int:
        return self.steps_per_stage or max(config.optim.steps // len(self.limits(config)), 1)

    def check(self, config) -> None:
        limits = self.limits(config)
        if any(x < 1 for x in limits):
            raise ConfigError(f"objective.schedule: every token limit must be >= 1, got {list(limits)}")
        if any(b >= a for a, b in zip(limits, limits[1:], strict=False)):
            raise ConfigError(f"objective.schedule must be strictly decreasing (e.g. [64, 48, 32]), got {list(limits)}")
        if config.loss.mask_truncated:
            raise ConfigError("loss.mask_truncated would hide the truncated completions that ThinkPrune scores 0; "
                              "set it to false")
        if self.steps_per_stage is not None and self.steps_per_stage < 1:
            raise ConfigError(f"objective.steps_per_stage must be >= 1, got {self.steps_per_stage}")
        if limits[0] > config.sampling.max_tokens:
            raise ConfigError(
                f"objective.schedule starts at {limits[0]} tokens, above sampling.max_tokens = "
                f"{config.sampling.max_tokens}; raise sampling.max_tokens or lower the schedule"
            )


def build(params: ThinkPruneParams, config, task) -> Recipe:
    limits = params.limits(config)
    length = params.stage_length(config)

    def stage(step: int) -> int:
        return min(step // length, len(limits) - 1)

    def advantage(rewards, groups):
        return group_z(rewards)

    return Recipe(
        "thinkprune", (("complete_and_correct", complete_and_correct, 1.0),), advantage,
        prompt=with_budget(PROMPTS[config.sampling.prompt]),
        token_limit=lambda step: limits[stage(step)], stage=stage,
    )
