"""PILAF (arXiv 2502.04270): response pairs for preference labelling from interpolated policies.

With the DPO implicit reward ``r_θ = β log(π_θ / π_ref)``, T-PILAF draws one response from
``π+ ∝ π_θ exp(r_θ)`` and the other from ``π- ∝ π_θ exp(-r_θ)``, i.e. ``π± ∝ π_θ^(1±β) π_ref^(∓β)``,
realised token by token by interpolating logits:

.. math::

    h_\\pm = (1 \\pm \\beta)\\, h_\\theta \\mp \\beta\\, h_{ref}

With probability ``mix`` (1/2 in the paper) a pair is (π+, π-), otherwise (π_θ, π_θ); this is
consistent with the paper's cost table (π+/π_θ vs π-/π_θ, a sampling cost of 3 forward passes per
pair: an interpolated pair needs 4 (policy and reference for each response), a plain pair 2). The pair is labelled by the task's oracle (the correct answer wins; ties are
dropped) and the policy is trained with the DPO loss
``-log σ(β[(log π_θ(y_w) - log π_ref(y_w)) - (log π_θ(y_l) - log π_ref(y_l))])``.
β = 0 gives π+ = π- = π_θ.

Source check: the interpolated-policy definition and the token-level logit interpolation are
restated from the paper as we read it; only its Table 1 (the pair layout and costs) could be
re-checked against a stored copy while writing this, so treat the exponents as our reading.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from selfsteer.smc import LanguageModel
from selfsteer.smc.lm.base import FeedResult

from ..losses import Normaliser
from ..policy import Policy
from ..questions import Question, Task
from ..rl import label
from ..rollout import PROMPTS, Rollout, Sample, group_seed, sample_groups_async
from ..schema import ConfigError
from .contract import Batch


def interpolate(policy_logp: np.ndarray, reference_logp: np.ndarray, beta: float, sign: int) -> np.ndarray:
    """Normalised log-probabilities of ``(1 + sign*beta) h_policy - sign*beta h_ref`` (last axis)."""
    mixed = (1 + sign * beta) * np.asarray(policy_logp, dtype=np.float64) - sign * beta * np.asarray(reference_logp, dtype=np.float64)
    m = mixed.max(axis=-1, keepdims=True)
    return mixed - (m + np.log(np.exp(mixed - m).sum(axis=-1, keepdims=True)))


class InterpolatedLM(LanguageModel):
    """An LM whose next-token distribution is π+ (``sign=+1``) or π- (``sign=-1``) of two LMs.

    Every call feeds both LMs (their own batchers merge the particles' calls), so any program can
    sample from the interpolated policy.
    """

    def __init__(self, policy: LanguageModel, reference: LanguageModel, *, beta: float, sign: int):
        super().__init__()
        if sign not in (1, -1):
            raise ValueError("sign must be +1 (π+) or -1 (π-)")
        self.policy, self.reference, self.beta, self.sign = policy, reference, float(beta), sign
        self.vocab = policy.vocab
        self.name = f"pilaf{'+' if sign > 0 else '-'}({policy.name}, beta={beta})"

    def encode(self, text: str) -> list[int]:
        return self.policy.encode(text)

    def bos_ids(self) -> list[int]:
        return self.policy.bos_ids()

    @property
    def has_chat_template(self) -> bool:
        return self.policy.has_chat_template

    def chat_prompt(self, messages):
        return self.policy.chat_prompt(messages)

    async def feed(self, handle, tokens, temperature=1.0, *, want_token_logprobs=True) -> FeedResult:
        tokens = list(tokens)
        if not tokens:
            raise ValueError("feed needs at least one token")
        if want_token_logprobs and len(tokens) > 1:  # needs every intermediate distribution
            out = await self.feed(handle, tokens[:1], temperature, want_token_logprobs=False)
            lps = []
            for t in tokens[1:]:
                lps.append(float(out.next_logprobs[t]))
                out = await self.feed(out.handle, [t], temperature, want_token_logprobs=False)
            return FeedResult(out.handle, np.array(lps), out.next_logprobs)
        h_pol, h_ref = handle if handle is not None else (None, None)
        a, b = await asyncio.gather(
            self.policy.feed(h_pol, tokens, temperature, want_token_logprobs=False),
            self.reference.feed(h_ref, tokens, temperature, want_token_logprobs=False),
        )
        nxt = interpolate(a.next_logprobs, b.next_logprobs, self.beta, self.sign)
        nxt.flags.writeable = False
        return FeedResult((a.handle, b.handle), np.zeros(0), nxt)

    def _process(self, requests):  # feed is overridden; nothing is queued on this LM's own batcher
        raise NotImplementedError("InterpolatedLM serves requests through its two LMs")


def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
             ref_rejected: torch.Tensor, beta: float) -> torch.Tensor:
    """Per-pair DPO loss from sequence log-probabilities, shape (n,)."""
    margin = (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)
    return -F.logsigmoid(beta * margin)


@dataclass(frozen=True)
class PilafParams:
    """PILAF settings."""

    beta: float = 0.1  # DPO β, also the interpolation strength
    mix: float = 0.5  # probability that a pair is (π+, π-) rather than (π_θ, π_θ)

    def check(self, config) -> None:
        if self.beta < 0:
            raise ConfigError(f"objective.beta must be >= 0, got {self.beta}")
        if not 0 <= self.mix <= 1:
            raise ConfigError(f"objective.mix must lie in [0, 1], got {self.mix}")


def pair_kinds(rng: np.random.Generator, n_pairs: int, mix: float) -> np.ndarray:
    """True where a pair is interpolated (π+, π-), with probability ``mix`` each."""
    return rng.random(n_pairs) < mix


class PilafObjective:
    """Online DPO on PILAF pairs: ``group_size // 2`` pairs per question, labelled by correctness."""

    name = "pilaf"

    def __init__(self, params: PilafParams, policy: Policy, task: Task, *, sampling, loss, seed: int):
        from selfsteer.smc.lm.transformers.backend import TransformersLM

        if policy.reference is None:
            raise ValueError("pilaf needs the frozen reference model (need_reference=True)")
        self.params, self.policy, self.task, self.sampling, self.seed = params, policy, task, sampling, seed
        self.loss_settings = loss
        reference_lm = TransformersLM(policy.reference, policy.lm.tokenizer, name="reference")
        self.plus = InterpolatedLM(policy.lm, reference_lm, beta=params.beta, sign=1)
        self.minus = InterpolatedLM(policy.lm, reference_lm, beta=params.beta, sign=-1)
        self.reference_lm = reference_lm

    def stage(self, step: int) -> int:
        return 0

    def evaluator(self):
        """An RL view of the policy (free completions, correctness) for held-out evaluation."""
        from ..rl import RLObjective
        from .grpo import GRPOParams, build_grpo

        recipe = build_grpo(GRPOParams(), None, self.task)
        return RLObjective(recipe, self.policy, self.task, sampling=self.sampling, loss=self.loss_settings, seed=self.seed)

    async def _sample(self, lm, questions, counts, step: int, salt: int) -> list[list[Sample]]:
        s = self.sampling

        async def one(i, q, n):
            if n == 0:
                return []
            groups = await sample_groups_async(lm, [q], group_size=n, max_tokens=s.max_tokens, temperature=s.temperature,
                                               seed=group_seed(self.seed, step, salt), step=i, program=Rollout,
                                               prompt=PROMPTS[s.prompt])
            return groups[0]

        return list(await asyncio.gather(*(one(i, q, n) for i, (q, n) in enumerate(zip(questions, counts, strict=True)))))

    async def _pairs(self, questions: Sequence[Question], step: int) -> tuple[list[tuple[Sample, Sample]], int]:
        n_pairs = max(self.sampling.group_size // 2, 1)
        rng = np.random.default_rng([self.seed, step, 11])
        kinds = [pair_kinds(rng, n_pairs, self.params.mix) for _ in questions]
        n_mixed = [int(k.sum()) for k in kinds]
        n_plain = [n_pairs - m for m in n_mixed]
        plus, minus, plain = await asyncio.gather(
            self._sample(self.plus, questions, n_mixed, step, 1),
            self._sample(self.minus, questions, n_mixed, step, 2),
            self._sample(self.policy.lm, questions, [2 * n for n in n_plain], step, 3),
        )
        pairs = []
        for b in range(len(questions)):
            pairs += list(zip(plus[b], minus[b], strict=True))
            pairs += list(zip(plain[b][0::2], plain[b][1::2], strict=True))
        return pairs, sum(n_mixed)

    def collect(self, questions: Sequence[Question], *, step: int) -> Batch:
        pairs, n_mixed = asyncio.run(self._pairs(questions, step))
        label([s for p in pairs for s in p], self.task)
        labelled = [(a, b) if a.correct else (b, a) for a, b in pairs if a.correct != b.correct]
        norm = Normaliser(len(labelled), 0, self.sampling.max_tokens)
        metrics = {
            "pairs": float(len(pairs)), "labelled_pairs": float(len(labelled)),
            "frac_interpolated": n_mixed / max(len(pairs), 1),
            "accuracy": float(np.mean([s.correct for p in pairs for s in p])) if pairs else 0.0,
        }
        return Batch(labelled, norm, metrics)

    def loss(self, part: list[tuple[Sample, Sample]], norm: Normaliser) -> tuple[torch.Tensor, dict[str, float]]:
        if not part:
            zero = sum(p.sum() * 0 for p in self.policy.trainable().values())
            return zero, {}
        samples = [s for pair in part for s in pair]  # chosen, rejected, chosen, rejected, ...
        mask = torch.zeros(len(samples), max(len(s.token_ids) for s in samples) or 1)
        for i, s in enumerate(samples):
            mask[i, : len(s.sampled)] = torch.as_tensor(s.sampled, dtype=torch.float32)
        logp = (self.policy.logprobs(samples) * mask.to(self._device())).sum(dim=1)  # (2n,)
        ref = (self.policy.reference_logprobs(samples) * mask.to(self._device())).sum(dim=1)
        losses = dpo_loss(logp[0::2], logp[1::2], ref[0::2], ref[1::2], self.params.beta)
        loss = losses.sum() / max(norm.n_sequences, 1)
        return loss, {"dpo_loss": float(loss.detach())}

    def _device(self):
        return next(self.policy.model.parameters()).device
