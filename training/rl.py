"""`RLObjective`: a `Recipe` run as GRPO-style group RL on a `Policy`.

``collect`` reads top to bottom: rollout (G particles per question) -> answers -> rewards ->
advantage hook. ``loss`` recomputes the completions' log-probabilities with gradients and applies
the recipe's loss with the step's normaliser, plus an optional k3 KL to the frozen reference.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np
import torch

from selfsteer.smc.scaling.metrics import mean_distinct_answers

from .config import LossSettings, SamplingSettings
from .losses import Normaliser, aggregate, get_loss, kl_k3
from .objectives.contract import Batch
from .objectives.recipe import Recipe
from .policy import Policy
from .questions import Question, Task
from .rewards import score
from .rollout import PROMPTS, Sample, sample_groups_async


def label(samples: Sequence[Sample], task: Task) -> None:
    """Fill ``answer`` and ``correct`` from the task's extractor and checker."""
    for s in samples:
        s.answer = task.extract(s.text)
        s.correct = task.is_correct(s.answer, s.question)


def padded(rows: Sequence[np.ndarray], width: int, dtype) -> torch.Tensor:
    """Rows of different lengths as one (N, width) tensor, zero-padded on the right."""
    out = torch.zeros((len(rows), width), dtype=dtype)
    for i, r in enumerate(rows):
        if len(r):
            out[i, : len(r)] = torch.as_tensor(np.asarray(r), dtype=dtype)
    return out


def group_metrics(groups: Sequence[Sequence[Sample]], rewards: np.ndarray, adv: np.ndarray) -> dict[str, float]:
    samples = [s for g in groups for s in g]
    return {
        "reward": float(rewards.mean()),
        "reward_std": float(rewards.std()),
        "accuracy": float(np.mean([s.correct for s in samples])),
        "frac_reward_zero_std": float(np.mean(rewards.std(axis=1) == 0)),
        "advantage_abs": float(np.abs(adv).mean()),
        "completion_tokens": float(np.mean([s.n_sampled for s in samples])),
        "truncated": float(np.mean([s.truncated for s in samples])),
        "distinct_answers": mean_distinct_answers([[s.answer for s in g] for g in groups]),
        "answered": float(np.mean([s.answer is not None for s in samples])),
    }


class RLObjective:
    """Group RL with a recipe's rewards, advantage hook and loss (see the module docstring)."""

    def __init__(self, recipe: Recipe, policy: Policy, task: Task, *, sampling: SamplingSettings,
                 loss: LossSettings, seed: int, program=None, states: dict[str, dict] | None = None):
        self.recipe, self.policy, self.task = recipe, policy, task
        self.sampling, self.loss_settings, self.seed = sampling, loss, seed
        self.program = program or recipe.program
        self.prompt = recipe.prompt or PROMPTS[sampling.prompt]
        self.kind = loss.kind or recipe.loss
        self.agg = loss.agg or recipe.agg
        self.states = {} if states is None else states
        self.name = recipe.name

    def stage(self, step: int) -> int:
        return self.recipe.stage_of(step)

    def token_limit(self, step: int) -> int:
        return self.recipe.limit(step, self.sampling.max_tokens)

    def rollouts(self, questions: Sequence[Question], *, step: int, group_size: int | None = None,
                 seed: int | None = None, states: dict[str, dict] | None = None):
        """Sample, label and score one group per question: (groups, samples, rewards (B, G), L)."""
        limit = self.token_limit(step)
        groups = asyncio.run(sample_groups_async(  # B lists of G samples
            self.policy.lm, questions, group_size=group_size or self.sampling.group_size, max_tokens=limit,
            temperature=self.sampling.temperature, seed=self.seed if seed is None else seed, step=step,
            program=self.program, prompt=self.prompt, states=self.states if states is None else states,
        ))
        samples = [s for g in groups for s in g]
        label(samples, self.task)
        rewards = score(samples, self.recipe.rewards).reshape(len(groups), -1)  # (B, G)
        return groups, samples, rewards, limit

    def collect(self, questions: Sequence[Question], *, step: int) -> Batch:
        groups, samples, rewards, limit = self.rollouts(questions, step=step)
        adv = np.asarray(self.recipe.advantage(rewards, groups), dtype=np.float64)  # (B, G): the advantage hook
        if adv.shape != rewards.shape or not np.all(np.isfinite(adv)):
            raise ValueError(f"the advantage hook of {self.name!r} returned {adv.shape} (finite: "
                             f"{bool(np.all(np.isfinite(adv)))}), expected finite values of shape {rewards.shape}")
        for s, a in zip(samples, adv.ravel(), strict=True):
            s.advantage = float(a)
        trained = [s for s in samples if not (self.loss_settings.mask_truncated and s.truncated)]
        norm = Normaliser(len(trained), sum(s.n_sampled for s in trained), limit)
        metrics = group_metrics(groups, rewards, adv) | {"token_limit": float(limit)}
        for name in {k for s in samples for k in s.rewards}:
            metrics[f"rewards/{name}"] = float(np.mean([s.rewards.get(name, 0.0) for s in samples]))
        return Batch(samples, norm, metrics, {"groups": groups})

    def loss(self, part: list[Sample], norm: Normaliser) -> tuple[torch.Tensor, dict[str, float]]:
        logp = self.policy.logprobs(part)  # (n, T), with gradients
        width = logp.shape[1]
        device = logp.device
        old = padded([s.token_logprobs for s in part], width, torch.float32).to(device)  # (n, T)
        mask = padded([s.sampled & (not (self.loss_settings.mask_truncated and s.truncated)) for s in part],
                      width, torch.bool).to(device)  # (n, T): policy tokens that enter the loss
        adv = torch.tensor([s.advantage for s in part], dtype=torch.float32, device=device)  # (n,)
        s = self.loss_settings
        per_token, info = get_loss(self.kind)(logp, old, adv, clip_low=s.clip_low, clip_high=s.clip_high)
        loss = aggregate(per_token, mask, self.agg, norm)
        stats = {"policy_loss": float(loss.detach())}
        if "clipped" in info:
            stats["clip_fraction"] = float((info["clipped"] & mask).sum()) / max(norm.n_tokens, 1)
        if s.kl_coef > 0:
            ref = self.policy.reference_logprobs(part)
            kl = aggregate(kl_k3(logp, ref), mask, self.agg, norm)
            loss = loss + s.kl_coef * kl
            stats["kl"] = float(kl.detach())
        return loss, stats
