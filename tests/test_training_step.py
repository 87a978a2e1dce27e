"""One gradient step of every objective on a tiny random Llama (CPU), gradient accumulation, LoRA."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch
from tiny_lm import coin_task, tiny_lm

from selfsteer.smc import load_lm
from selfsteer.training import (
    OBJECTIVES,
    PROGRAMS,
    build_objective,
    config_from_dict,
    train,
    wrap_policy,
)
from selfsteer.training.config import LoraSettings
from selfsteer.training.objectives import needs_reference
from selfsteer.training.objectives.rlcr import ConfidenceRollout
from selfsteer.training.policy import MissingPackage

pytestmark = pytest.mark.usefixtures("one_thread")


class ShortConfidence(ConfidenceRollout):
    """RLCR's tagged format with a one-token answer, so a random model is always formatted."""

    async def step(self):
        digit = self.ctx.lm.masks.where("single_digit", lambda t: len(t) == 1 and t.isdigit())
        await self.force("<answer>")
        await self.generate(max_tokens=1)
        await self.force("</answer><confidence>0.")
        await self.choose(digit)
        await self.force("</confidence>")
        self.finish(self.text)


def small_config(tmp_path, name, **objective):
    extra = {"thinkprune": {"schedule": [6, 4]}}.get(name, {})
    return config_from_dict({
        "out_dir": str(tmp_path / name), "seed": 1,
        "objective": {"name": name, **extra, **objective},
        "sampling": {"group_size": 4, "questions_per_step": 2, "max_tokens": 6, "prompt": "qa",
                     "program": "short_confidence" if name in ("rlcr", "thinkprune") else None},
        "optim": {"steps": 1, "lr": 1e-2, "grad_accum": 2},
        "log": {"eval_questions": 2, "eval_samples": 2, "progress": False, "tensorboard": False},
    })


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_every_objective_takes_a_gradient_step(tmp_path, monkeypatch, name):
    monkeypatch.setitem(PROGRAMS, "short_confidence", ShortConfidence)
    config = small_config(tmp_path, name)
    policy = wrap_policy(tiny_lm(), need_reference=needs_reference(config))
    before = {k: v.detach().clone() for k, v in policy.trainable().items()}
    result = train(config, policy=policy, task=coin_task(with_context=name == "meta_prompt"))
    changed = [k for k, v in policy.trainable().items() if not torch.equal(before[k], v)]
    assert changed, f"{name}: no parameter changed"
    record = result.history[-1]
    assert record["grad_norm"] > 0
    rows = [json.loads(line) for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
    assert [r["kind"] for r in rows] == ["eval", "train", "eval"]
    assert (tmp_path / name / "final" / "config.json").is_file()
    assert (tmp_path / name / "checkpoints" / "latest").is_file()


@pytest.mark.parametrize("name", ["grpo", "lens", "asymre", "meta_prompt"])
def test_gradient_accumulation_does_not_change_the_gradient(tmp_path, name):
    config = small_config(tmp_path, name)
    policy = wrap_policy(tiny_lm(), need_reference=needs_reference(config))
    objective = build_objective(config, coin_task(with_context=name == "meta_prompt"), policy)
    batch = objective.collect(list(objective.task.train[:2]), step=0)
    grads = []
    for n_parts in (1, 3):
        policy.model.zero_grad(set_to_none=True)
        for part in batch.parts(n_parts):
            loss, _ = objective.loss(part, batch.norm)
            loss.backward()
        grads.append(torch.cat([p.grad.flatten() for p in policy.trainable().values()]))
    assert grads[0].abs().sum() > 0
    assert torch.allclose(grads[0], grads[1], atol=1e-6, rtol=1e-4)


def test_lora_trains_only_the_adapters_of_the_chosen_layers(tmp_path):
    config = small_config(tmp_path, "asymre")
    policy = wrap_policy(tiny_lm(), lora=LoraSettings(r=4, alpha=8, layers=(-1,)))
    names = list(policy.trainable())
    assert names and all("lora_" in n for n in names)
    assert all(".layers.1." in n for n in names)  # -1: the top layer of two
    frozen = {n: p.detach().clone() for n, p in policy.model.named_parameters() if not p.requires_grad}
    adapters = {n: p.detach().clone() for n, p in policy.trainable().items()}
    train(config, policy=policy, task=coin_task())
    assert all(torch.equal(frozen[n], p) for n, p in policy.model.named_parameters() if n in frozen)
    assert any(not torch.equal(adapters[n], p) for n, p in policy.trainable().items())
    final = tmp_path / "asymre" / "final"
    assert (final / "adapter" / "adapter_config.json").is_file()
    merged = load_lm(str(final))  # the merged follower opens like any model directory
    x = torch.tensor([[1, 2, 3]])
    with torch.no_grad():
        assert torch.allclose(merged.model(input_ids=x).logits, policy.model(input_ids=x).logits, atol=1e-4)


def test_missing_optional_packages_name_the_fix(tmp_path, monkeypatch):
    # peft and tensorboard are installed here; hiding them from importlib is how we see the message
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in ("peft", "tensorboard") else real(name, *a))
    with pytest.raises(MissingPackage, match=r"needs the package peft: pip install peft"):
        wrap_policy(tiny_lm(), lora=LoraSettings())
    config = config_from_dict({"out_dir": str(tmp_path / "tb"), "optim": {"steps": 1},
                               "sampling": {"group_size": 2, "questions_per_step": 1, "max_tokens": 2},
                               "log": {"progress": False}})
    with pytest.raises(MissingPackage, match=r"pip install tensorboard"):
        train(config, policy=wrap_policy(tiny_lm()), task=coin_task())


def test_lora_target_modules_are_checked():
    from selfsteer.training import ConfigError

    with pytest.raises(ConfigError, match=r"\['attn'\] are not modules of this model"):
        wrap_policy(tiny_lm(), lora=LoraSettings(target_modules=("attn",)))


def test_training_needs_a_transformers_model(exact_lm):
    with pytest.raises(TypeError, match="training needs a transformers model"):
        wrap_policy(exact_lm)


def test_kl_to_the_frozen_reference_starts_at_zero_and_grows(tmp_path):
    config = small_config(tmp_path, "grpo")
    config = config_from_dict({**config.to_dict(), "loss": {"kl_coef": 0.5}, "optim": {"steps": 2, "lr": 5e-2}})
    policy = wrap_policy(tiny_lm(), need_reference=needs_reference(config))
    assert policy.reference is not None
    result = train(config, policy=policy, task=coin_task())
    first, second = result.history
    assert first["kl"] == pytest.approx(0.0, abs=1e-7)  # the policy starts as the reference
    assert second["kl"] > 0


def test_refuses_to_overwrite_a_run_and_checks_the_config_on_resume(tmp_path):
    from selfsteer.training import ConfigError

    config = small_config(tmp_path, "grpo")
    train(config, policy=wrap_policy(tiny_lm()), task=coin_task())
    with pytest.raises(ConfigError, match="already holds checkpoints"):
        train(config, policy=wrap_policy(tiny_lm()), task=coin_task())
    changed = config_from_dict({**config.to_dict(), "optim": {**config.to_dict()["optim"], "lr": 0.5, "steps": 2}})
    with pytest.raises(ConfigError, match=r"differs from the checkpoint's in \['optim.lr'\]"):
        train(changed, resume=True, policy=wrap_policy(tiny_lm()), task=coin_task())
    longer = config_from_dict({**config.to_dict(), "optim": {**config.to_dict()["optim"], "steps": 2}})
    result = train(longer, resume=True, policy=wrap_policy(tiny_lm()), task=coin_task())
    assert [r["step"] for r in result.history] == [2]


def test_trl_style_reward_functions_plug_in():
    import numpy as np

    from selfsteer.training import from_trl
    from selfsteer.training.questions import Question
    from selfsteer.training.rollout import Sample

    seen = {}

    def length_reward(prompts, completions, completion_ids, answer, trainer_state, **kwargs):
        seen.update(prompts=prompts, answer=answer, state=trainer_state)
        return [float(len(c)) for c in completions]

    state = {"visits": 3}
    sample = Sample(Question("q", "What?", "42"), (1,), (5, 6), np.zeros(2), np.ones(2, dtype=bool), "abcd", False,
                    state=state)
    assert from_trl(length_reward)(sample) == 4.0
    assert seen == {"prompts": ["What?"], "answer": ["42"], "state": state}
    assert from_trl(lambda **kw: [None])(sample) is None


def test_masking_truncated_completions_removes_them_from_the_loss(tmp_path):
    from selfsteer.training import ConfigError

    config = config_from_dict({**small_config(tmp_path, "asymre").to_dict(), "loss": {"mask_truncated": True}})
    policy = wrap_policy(tiny_lm())
    objective = build_objective(config, coin_task(), policy)
    batch = objective.collect(list(objective.task.train[:2]), step=0)
    kept = [s for s in batch.items if not s.truncated]
    assert batch.norm.n_sequences == len(kept) < len(batch.items)  # a random model rarely ends within 6 tokens
    truncated = [s for s in batch.items if s.truncated]
    loss, _ = objective.loss(truncated, batch.norm)
    assert loss.item() == 0.0
    with pytest.raises(ConfigError, match="mask_truncated would hide the truncated completions"):
        config_from_dict({"objective": {"name": "thinkprune"}, "loss": {"mask_truncated": True}})
