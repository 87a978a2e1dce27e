"""Gradient steps that emulate prompting (arXiv 2506.20989), as a meta-learning objective.

For a context c (a fact), a question x and answer tokens y:

.. math::

    \\theta' = \\theta - \\alpha \\nabla_\\theta L_{LM}(c; \\theta)\\qquad\\text{(one inner step of next-token loss on c)}

    L_{outer}(\\theta) = \\frac{1}{|y|} \\sum_t \\mathrm{KL}\\big(p_{frozen}(\\cdot \\mid c, x, y_{<t})\\ \\|\\ p_{\\theta'}(\\cdot \\mid x, y_{<t})\\big)

The teacher is the frozen starting model *prompted with* c; the student sees only x, after one
gradient step on c. Backpropagation goes through the inner step (second order, MAML); with
``first_order: true`` the inner gradient is treated as a constant. With ``inner_lr = 0`` the
objective is plain context distillation, ``KL(p_frozen(.|c,x) || p_theta(.|x))``. With LoRA, both
the inner and the outer updates act on the adapters (the paper's LoRA variant).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch.func import functional_call
from torch.nn.attention import SDPBackend, sdpa_kernel

from ..losses import Normaliser
from ..policy import Policy
from ..questions import Question, Task
from ..rollout import PROMPTS
from ..schema import ConfigError
from .contract import Batch


def answer_logprobs(model, prompt_ids: Sequence[int], answer_ids: Sequence[int], *, params=None,
                    temperature: float = 1.0) -> torch.Tensor:
    """Full next-token log-distributions at the answer positions, shape (|y|, V)."""
    ids = torch.tensor([list(prompt_ids) + list(answer_ids)], device=next(model.parameters()).device)
    if params is None:
        logits = model(input_ids=ids, use_cache=False).logits
    else:
        logits = functional_call(model, params, args=(), kwargs={"input_ids": ids, "use_cache": False}, strict=False).logits
    start = len(prompt_ids) - 1
    return torch.log_softmax(logits[0, start : start + len(answer_ids)].float() / temperature, dim=-1)


def lm_loss(model, ids: Sequence[int]) -> torch.Tensor:
    """Mean next-token cross-entropy of ``ids`` under ``model``."""
    x = torch.tensor([list(ids)], device=next(model.parameters()).device)
    logits = model(input_ids=x, use_cache=False).logits[0, :-1].float()
    return torch.nn.functional.cross_entropy(logits, x[0, 1:])


def inner_step(model, context_ids: Sequence[int], *, inner_lr: float, first_order: bool) -> dict[str, torch.Tensor]:
    """θ' = θ - α ∇ L_LM(c; θ) over the trainable parameters (a graph through θ unless first order)."""
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    if inner_lr == 0:
        return params
    if len(context_ids) < 2:
        raise ValueError("the context needs at least two tokens for a next-token loss")
    loss = lm_loss(model, context_ids)
    grads = torch.autograd.grad(loss, list(params.values()), create_graph=not first_order, allow_unused=True)
    return {n: p if g is None else p - inner_lr * g for (n, p), g in zip(params.items(), grads, strict=True)}


def kl_rows(teacher_logp: torch.Tensor, student_logp: torch.Tensor) -> torch.Tensor:
    """``KL(teacher || student)`` per row of (T, V) log-distributions, shape (T,)."""
    return (teacher_logp.exp() * (teacher_logp - student_logp)).sum(dim=-1)


@dataclass(frozen=True)
class MetaExample:
    """Token ids of one (context, question, answer) triple."""

    context_ids: tuple[int, ...]
    student_prompt: tuple[int, ...]
    teacher_prompt: tuple[int, ...]
    answer_ids: tuple[int, ...]


def prompt_emulation_loss(model, teacher, ex: MetaExample, *, inner_lr: float, first_order: bool = False,
                          temperature: float = 1.0) -> torch.Tensor:
    """Mean outer KL over the answer positions for one example (differentiable in ``model``)."""
    # Fused attention kernels have no double backward; the math kernel does.
    with sdpa_kernel(SDPBackend.MATH):
        updated = inner_step(model, ex.context_ids, inner_lr=inner_lr, first_order=first_order)
        student = answer_logprobs(model, ex.student_prompt, ex.answer_ids, params=updated, temperature=temperature)
    with torch.no_grad():
        target = answer_logprobs(teacher, ex.teacher_prompt, ex.answer_ids, temperature=temperature)
    return kl_rows(target, student).mean()


@dataclass(frozen=True)
class MetaPromptParams:
    """Prompt-emulation meta-learning settings (paper: inner lr 1e-3, one inner step)."""

    inner_lr: float = 1e-3  # α of the inner step
    first_order: bool = False  # True: no second-order term (cheaper, FOMAML-style)

    def check(self, config) -> None:
        if self.inner_lr < 0:
            raise ConfigError(f"objective.inner_lr must be >= 0, got {self.inner_lr}")


class MetaPromptObjective:
    """Each question of the task must carry a ``context`` (the built-in ``facts`` task does)."""

    name = "meta_prompt"

    def __init__(self, params: MetaPromptParams, policy: Policy, task: Task, *, prompt: str = "chat"):
        if policy.reference is None:
            raise ValueError("meta_prompt needs the frozen reference model as its teacher (need_reference=True)")
        missing = [q.id for q in task.train if not q.context]
        if missing:
            raise ValueError(f"objective meta_prompt needs questions with a context (task facts, or a "
                             f"\"context\" field in JSONL rows); {len(missing)} have none, e.g. {missing[0]}")
        self.params, self.policy, self.task, self.prompt = params, policy, task, PROMPTS[prompt]
        self.prompt_kind = prompt

    def stage(self, step: int) -> int:
        return 0

    def example(self, q: Question) -> MetaExample:
        lm = self.policy.lm
        with_context = dataclasses.replace(q, prompt=f"{q.context}\n{q.prompt}")
        answer = q.answer if self.prompt_kind == "chat" else " " + q.answer
        return MetaExample(
            tuple(lm.bos_ids() + lm.encode(q.context)),
            tuple(lm.prompt_ids(self.prompt(q, 0))),
            tuple(lm.prompt_ids(self.prompt(with_context, 0))),
            tuple(lm.encode(answer)),
        )

    def collect(self, questions: Sequence[Question], *, step: int) -> Batch:
        examples = [self.example(q) for q in questions]
        norm = Normaliser(len(examples), sum(len(e.answer_ids) for e in examples), 0)
        return Batch(examples, norm, {"answer_tokens": norm.n_tokens / max(len(examples), 1)})

    def loss(self, part: list[MetaExample], norm: Normaliser) -> tuple[torch.Tensor, dict[str, float]]:
        total = 0.0
        for ex in part:
            total = total + prompt_emulation_loss(self.policy.model, self.policy.reference, ex,
                                                  inner_lr=self.params.inner_lr, first_order=self.params.first_order,
                                                  temperature=self.policy.temperature)
        loss = total / max(norm.n_sequences, 1)
        return loss, {"outer_kl": float(loss.detach())}
