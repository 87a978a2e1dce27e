"""Prompt-emulating meta-learning on a tiny random Llama: its limits and its second-order gradient."""

from __future__ import annotations

import pytest
import torch
from tiny_lm import coin_task, tiny_lm

from selfsteer.training import config_from_dict, train, wrap_policy
from selfsteer.training.evaluate import evaluate
from selfsteer.training.objectives.meta_prompt import (
    MetaExample,
    MetaPromptObjective,
    MetaPromptParams,
    answer_logprobs,
    kl_rows,
    prompt_emulation_loss,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def setup(inner_lr=1e-2):
    policy = wrap_policy(tiny_lm(), need_reference=True)
    torch.manual_seed(0)  # a fixed perturbation: the test is the same every run
    with torch.no_grad():  # make the student differ from the frozen teacher
        for p in policy.model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    objective = MetaPromptObjective(MetaPromptParams(inner_lr=inner_lr), policy, coin_task(with_context=True), prompt="qa")
    return policy, objective, objective.example(objective.task.train[0])


def grads_of(loss, model):
    return torch.autograd.grad(loss, [p for p in model.parameters() if p.requires_grad], allow_unused=True)


def test_zero_inner_lr_is_context_distillation():
    policy, _, ex = setup()
    model, teacher = policy.model, policy.reference
    loss = prompt_emulation_loss(model, teacher, ex, inner_lr=0.0)
    student = answer_logprobs(model, ex.student_prompt, ex.answer_ids)
    with torch.no_grad():
        target = answer_logprobs(teacher, ex.teacher_prompt, ex.answer_ids)
    distill = kl_rows(target, student).mean()
    assert loss.item() == pytest.approx(distill.item(), rel=1e-6)
    for a, b in zip(grads_of(loss, model), grads_of(distill, model), strict=True):
        assert torch.allclose(a, b, atol=1e-7)


def test_loss_vanishes_when_student_equals_teacher_and_the_teacher_gets_no_gradient():
    policy, _, ex = setup()
    same = MetaExample(ex.context_ids, ex.teacher_prompt, ex.teacher_prompt, ex.answer_ids)
    loss = prompt_emulation_loss(policy.reference, policy.reference, same, inner_lr=0.0)
    assert loss.item() == pytest.approx(0.0, abs=1e-7)
    loss = prompt_emulation_loss(policy.model, policy.reference, ex, inner_lr=1e-2)
    loss.backward()
    assert all(p.grad is None for p in policy.reference.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in policy.model.parameters())


def test_backpropagation_goes_through_the_inner_step():
    policy, _, ex = setup(inner_lr=0.5)
    second = grads_of(prompt_emulation_loss(policy.model, policy.reference, ex, inner_lr=0.5), policy.model)
    first = grads_of(prompt_emulation_loss(policy.model, policy.reference, ex, inner_lr=0.5, first_order=True),
                     policy.model)
    diff = sum((a - b).abs().sum() for a, b in zip(second, first, strict=True))
    assert diff > 1e-6  # the second-order term (create_graph=True) changes the outer gradient


def test_meta_training_lowers_the_post_inner_step_kl(tmp_path):
    config = config_from_dict({
        "out_dir": str(tmp_path), "objective": {"name": "meta_prompt", "inner_lr": 1e-2},
        "sampling": {"group_size": 2, "questions_per_step": 4, "prompt": "qa"},
        "optim": {"steps": 8, "lr": 3e-3}, "log": {"progress": False, "tensorboard": False, "eval_questions": 4},
    })
    policy, objective, _ = setup()
    task = objective.task
    fixed = list(task.train[:4])
    objective = MetaPromptObjective(MetaPromptParams(inner_lr=1e-2), policy, task, prompt="qa")
    before = evaluate(objective, fixed, step=0, samples=1, seed=0)["outer_kl"]
    train(config, policy=policy, task=type(task)(task.name, tuple(fixed), tuple(fixed), numeric=False))
    after = evaluate(objective, fixed, step=0, samples=1, seed=0)["outer_kl"]
    assert after < 0.7 * before
