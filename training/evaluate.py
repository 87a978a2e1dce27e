"""Held-out evaluation: sample completions for questions the run never trains on and measure them.

For group-RL objectives the held-out completions come from the objective's own rollout program
and token limit, with a fixed evaluation seed (the same randomness at every evaluation, so
before/after numbers differ only through the weights) and a throwaway per-question state (an
evaluation never touches exploration counts). Reported: accuracy, mean reward, completion length,
truncation rate, distinct answers per question and, when completions state a confidence
(``<confidence>`` tags), ECE, Brier score and AUROC over the formatted ones. The meta-learning
objective reports the mean outer KL after the inner step instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from selfsteer.smc.scaling.answers import parse_tagged
from selfsteer.smc.scaling.metrics import auroc, brier, ece, mean_distinct_answers

from .objectives.meta_prompt import MetaPromptObjective, prompt_emulation_loss
from .questions import Question
from .rl import RLObjective
from .rollout import Sample

EVAL_SEED_SALT = 1_000_003


def sample_metrics(groups: Sequence[Sequence[Sample]]) -> dict[str, float]:
    """Accuracy, reward, length, truncation, diversity and calibration of labelled groups."""
    samples = [s for g in groups for s in g]
    out = {
        "accuracy": float(np.mean([s.correct for s in samples])),
        "reward": float(np.mean([s.reward for s in samples])),
        "completion_tokens": float(np.mean([s.n_sampled for s in samples])),
        "truncated": float(np.mean([s.truncated for s in samples])),
        "answered": float(np.mean([s.answer is not None for s in samples])),
        "distinct_answers": mean_distinct_answers([[s.answer for s in g] for g in groups]),
    }
    stated = [(p.confidence, s.correct) for s in samples if (p := parse_tagged(s.text)).formatted]
    if any("<answer>" in s.text for s in samples):
        out["formatted"] = len(stated) / len(samples)
    if stated:
        q = [x for x, _ in stated]
        c = [y for _, y in stated]
        out |= {"confidence": float(np.mean(q)),
                "ece": ece(q, c), "brier": brier(q, c), "auroc": auroc(q, c),
                "accuracy_formatted": float(np.mean(c))}
    return out


def evaluate(objective, questions: Sequence[Question], *, step: int, samples: int, seed: int) -> dict[str, float]:
    """Metrics on ``questions`` for the policy inside ``objective`` (see the module docstring)."""
    if not questions:
        return {}
    if isinstance(objective, MetaPromptObjective):
        kls = []
        with torch.enable_grad():  # the inner step needs a gradient even when nothing is trained
            for q in questions:
                ex = objective.example(q)
                kls.append(float(prompt_emulation_loss(objective.policy.model, objective.policy.reference, ex,
                                                       inner_lr=objective.params.inner_lr, first_order=True,
                                                       temperature=objective.policy.temperature).detach()))
        objective.policy.model.zero_grad(set_to_none=True)
        return {"outer_kl": float(np.mean(kls))}
    if not isinstance(objective, RLObjective):
        objective = objective.evaluator()
    groups, _, _, _ = objective.rollouts(questions, step=step, group_size=samples,
                                         seed=seed + EVAL_SEED_SALT, states={})
    return sample_metrics(groups)
