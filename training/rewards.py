"""Reward functions: plain callables ``fn(sample) -> float | None`` on one `Sample`.

A reward function sees everything about a completion: ``sample.text``, the extracted
``sample.answer`` and ``sample.correct``, ``sample.token_logprobs`` under the sampling policy,
``sample.truncated``, the ``sample.question`` and ``sample.state``, a dict that persists per
question across steps (and is checkpointed). ``None`` means "not applicable": that function adds
nothing for this sample. An objective combines several with weights (`score`).

TRL-style functions (``f(prompts=, completions=, completion_ids=, **columns) -> list``) plug in
through `from_trl`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .rollout import Sample

RewardFn = Callable[[Sample], float | None]


def correctness(sample: Sample) -> float:
    """1 if the extracted answer is right, else 0 (the RLVR reward)."""
    return 1.0 if sample.correct else 0.0


def complete_and_correct(sample: Sample) -> float:
    """1 only for a correct answer that finished within the token limit (ThinkPrune)."""
    return 1.0 if sample.correct and not sample.truncated else 0.0


def score(samples: Sequence[Sample], reward_fns: Sequence[tuple[str, RewardFn, float]]) -> np.ndarray:
    """Weighted sum of reward functions per sample, shape (N,); also fills ``sample.rewards``/``reward``.

    ``reward_fns`` holds ``(name, fn, weight)``; a ``None`` result contributes 0 and is not
    logged for that sample.
    """
    totals = np.zeros(len(samples))
    for i, s in enumerate(samples):
        s.rewards = {}
        for name, fn, weight in reward_fns:
            value = fn(s)
            if value is None:
                continue
            value = float(value)
            if not np.isfinite(value):
                raise ValueError(f"reward function {name!r} returned {value} for question {s.question.id}")
            s.rewards[name] = value
            totals[i] += weight * value
        s.reward = float(totals[i])
    return totals


def from_trl(fn: Callable[..., list]) -> RewardFn:
    """Adapt a TRL reward function (batched keyword callable) to a per-sample `RewardFn`.

    It is called with one-element lists: ``prompts``, ``completions``, ``completion_ids``, the
    question's fields (``answer``, ``id``) and ``trainer_state`` (the question's state dict).
    """

    def reward(sample: Sample) -> float | None:
        q = sample.question
        out = fn(prompts=[q.prompt], completions=[sample.text], completion_ids=[list(sample.token_ids)],
                 answer=[q.answer], id=[q.id], trainer_state=sample.state)
        return None if out[0] is None else float(out[0])

    reward.__name__ = getattr(fn, "__name__", "trl_reward")
    return reward
