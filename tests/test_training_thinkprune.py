"""ThinkPrune: truncated answers earn nothing, the budget is in the prompt, stages chain their weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from tiny_lm import coin_task, tiny_lm

from selfsteer.training import PROGRAMS, config_from_dict, train, wrap_policy
from selfsteer.training.objectives import build_recipe
from selfsteer.training.questions import Question
from selfsteer.training.rewards import complete_and_correct
from selfsteer.training.rollout import LineRollout, Sample

pytestmark = pytest.mark.usefixtures("one_thread")


def sample(*, correct: bool, truncated: bool) -> Sample:
    q = Question("q", "What is 3 + 4?", "7")
    return Sample(q, (1,), (2,), np.zeros(1), np.ones(1, dtype=bool), "7", truncated, answer="7", correct=correct)


def test_truncated_correct_answers_earn_zero():
    assert complete_and_correct(sample(correct=True, truncated=True)) == 0.0
    assert complete_and_correct(sample(correct=True, truncated=False)) == 1.0
    assert complete_and_correct(sample(correct=False, truncated=False)) == 0.0


def test_schedule_stages_and_budget_in_the_prompt():
    config = config_from_dict({"objective": {"name": "thinkprune", "schedule": [48, 32, 16], "steps_per_stage": 5},
                               "sampling": {"max_tokens": 48}})
    recipe = build_recipe(config, None)
    assert [recipe.limit(s, 48) for s in (0, 4, 5, 9, 10, 99)] == [48, 48, 32, 32, 16, 16]
    assert [recipe.stage_of(s) for s in (0, 5, 10, 99)] == [0, 1, 2, 2]
    prompt = recipe.prompt(Question("q", "What is 3 + 4?", "7"), 32)
    assert prompt[0]["content"] == "What is 3 + 4? The output of the assistant should be within 32 tokens."
    even = build_recipe(config_from_dict({"objective": {"name": "thinkprune", "schedule": [8, 4]},
                                          "optim": {"steps": 10}, "sampling": {"max_tokens": 8}}), None)
    assert [even.stage_of(s) for s in (0, 4, 5, 9)] == [0, 0, 1, 1]


class OneOrTwoLines(LineRollout):
    """Ends after one sampled token half the time (so some completions finish inside the budget)."""

    async def step(self):
        await self.generate(max_tokens=1 if self.rng.random() < 0.5 else None)
        self.finish(self.text)


def test_each_stage_starts_from_the_last_stages_weights(tmp_path, monkeypatch):
    monkeypatch.setitem(PROGRAMS, "one_or_two", OneOrTwoLines)
    config = config_from_dict({
        "out_dir": str(tmp_path), "objective": {"name": "thinkprune", "schedule": [6, 3], "steps_per_stage": 2},
        "sampling": {"group_size": 4, "questions_per_step": 2, "max_tokens": 6, "prompt": "qa", "program": "one_or_two"},
        "optim": {"steps": 4, "lr": 1e-2}, "log": {"progress": False, "tensorboard": False, "eval_samples": 2},
    })
    policy = wrap_policy(tiny_lm())
    seen = []

    def observe(event, payload):
        if event in ("step", "stage"):
            seen.append((event, payload["step"], {k: v.detach().clone() for k, v in policy.trainable().items()},
                         payload.get("token_limit")))

    result = train(config, policy=policy, task=coin_task(), observers=[observe])
    events = [(e, s) for e, s, _, _ in seen]
    assert events == [("step", 1), ("step", 2), ("stage", 2), ("step", 3), ("step", 4)]
    end_of_stage_0, stage_1_start = seen[1][2], seen[2][2]
    assert all(torch.equal(end_of_stage_0[k], stage_1_start[k]) for k in end_of_stage_0)
    exported = load_file(tmp_path / "stages" / "stage-0" / "model.safetensors")
    for k, v in end_of_stage_0.items():
        assert torch.equal(exported[k], v)
    assert [r["token_limit"] for r in result.history] == [6, 6, 3, 3]
    assert all(0.0 <= r["truncated"] <= 1.0 for r in result.history)
    assert any(r["truncated"] > 0 for r in result.history)
