"""Group sampling through the SMC engine: a GRPO group is the particle population of one run.

For each question, a `Rollout` program is run by ``smc(..., n_particles=G, ess_threshold=0)``:
G independent particles, never resampled, their LM calls batched on the follower (and the groups
of all questions in a step run concurrently, so they batch together too). A rollout program
writes text with three verbs and records, for every token, whether the policy sampled it and its
log-probability under the sampling policy:

- ``await self.generate(stop=..., max_tokens=...)``: sample a chunk (policy tokens);
- ``await self.force(text)``: append fixed text (not trained on: masked out of the loss);
- ``await self.choose(mask)``: sample one token restricted to a `TokenMask`; its sampling
  probability is the restricted, renormalised one, and the loss uses the same restriction.

The default program generates one free chunk up to end of sequence. A completion that reaches the
token limit ``L`` (sampled tokens) before finishing is *truncated*; after that, further writes are
ignored, so a truncated answer can never look well formed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from selfsteer.smc import LanguageModel, LMContext, Model, Token, TokenMask, smc_async
from selfsteer.smc.lm.base import Prompt

from .questions import Question


@dataclass
class Sample:
    """One completion (one particle) and everything the reward and advantage hooks may read.

    ``token_logprobs`` are under the sampling policy (tempered; restricted draws renormalised);
    ``sampled[t]`` is False for forced tokens, which get no gradient. ``state`` is the question's
    persistent dict (kept across steps and saved in checkpoints: keep it JSON-serialisable).
    """

    question: Question
    prompt_ids: tuple[int, ...]
    token_ids: tuple[int, ...]
    token_logprobs: np.ndarray  # (T,)
    sampled: np.ndarray  # (T,) bool
    text: str
    truncated: bool
    restrictions: dict[int, TokenMask] = field(default_factory=dict)  # position -> allowed tokens
    state: dict = field(default_factory=dict)
    answer: str | None = None
    correct: bool = False
    reward: float = 0.0
    rewards: dict[str, float] = field(default_factory=dict)
    advantage: float = 0.0

    @property
    def n_sampled(self) -> int:
        """Number of policy-sampled tokens (the completion length |o| used by LENS)."""
        return int(self.sampled.sum())

    @property
    def sampled_logprob(self) -> float:
        """log pi_old(o | q) over the sampled tokens."""
        return float(self.token_logprobs[self.sampled].sum())

    @property
    def mean_logprob(self) -> float:
        """Length-normalised log-probability: log of the geometric-mean token probability p̄."""
        n = self.n_sampled
        return self.sampled_logprob / n if n else 0.0


class Rollout(Model):
    """A program that writes one completion for one prompt (see the module docstring).

    Subclass and override ``step`` to structure the completion (forced tags, masked choices);
    call ``self.finish(self.text)`` at the end. ``max_tokens`` bounds the sampled tokens.
    """

    def __init__(self, lm: LanguageModel, prompt: Prompt, *, max_tokens: int, temperature: float = 1.0):
        super().__init__()
        self.ctx = LMContext(lm, prompt, temperature=temperature)
        self.max_tokens = max_tokens
        self.logprobs: list[float] = []
        self.sampled: list[bool] = []
        self.restrictions: dict[int, TokenMask] = {}
        self.truncated = False

    # ----- state ------------------------------------------------------------------------------
    @property
    def text(self) -> str:
        return self.ctx.text

    @property
    def budget(self) -> int:
        """Sampled tokens still allowed."""
        return self.max_tokens - sum(self.sampled)

    @property
    def closed(self) -> bool:
        """True once truncated or ended (EOS): further writes are ignored."""
        return self.truncated or self.ctx.ended

    # ----- verbs ------------------------------------------------------------------------------
    async def generate(self, stop: str | Sequence[str] = (), *, max_tokens: int | None = None) -> str:
        """Sample a chunk up to ``stop`` (kept), EOS, or ``max_tokens`` (default: the whole budget)."""
        if self.closed:
            return ""
        if self.budget <= 0:
            self.truncated = True
            return ""
        limit = self.budget if max_tokens is None else min(max_tokens, self.budget)
        limited_by_budget = limit == self.budget
        chunk = await self.sample(self.ctx.chunk(stop=stop, max_tokens=limit))
        self.logprobs.extend(chunk.token_logprobs)
        self.sampled.extend([True] * len(chunk.token_ids))
        if chunk.stop_reason == "max_tokens" and limited_by_budget:
            self.truncated = True
        return chunk.text

    async def force(self, text: str) -> None:
        """Append ``text`` as is (its tokens are not trained on)."""
        if self.closed or not text:
            return
        lps = await self.ctx.append(self.ctx.lm.encode(text))
        self.logprobs.extend(float(x) for x in lps)
        self.sampled.extend([False] * len(lps))

    async def choose(self, mask: TokenMask) -> Token | None:
        """Sample one token from the policy restricted to ``mask`` (None once closed)."""
        if self.closed:
            return None
        if self.budget <= 0:
            self.truncated = True
            return None
        self.ctx.restrict(mask)
        lp = await self.ctx.current_logprobs()
        token = await self.sample(self.ctx.next_token())
        self.restrictions[len(self.logprobs)] = mask
        self.logprobs.append(float(lp[token.id]))
        self.sampled.append(True)
        return token

    async def step(self) -> None:
        await self.generate()
        self.finish(self.text)

    # ----- result -----------------------------------------------------------------------------
    def to_sample(self, question: Question, state: dict) -> Sample:
        ctx = self.ctx
        return Sample(
            question=question,
            prompt_ids=tuple(ctx.tokens[: ctx.n_prompt]),
            token_ids=tuple(ctx.generated_ids),
            token_logprobs=np.array(self.logprobs, dtype=np.float64),
            sampled=np.array(self.sampled, dtype=bool),
            text=self.text,
            truncated=self.truncated or not self.alive,  # a particle that died never finished
            restrictions=dict(self.restrictions),
            state=state,
        )


class LineRollout(Rollout):
    """One line: the completion ends at the first newline (or EOS, or the budget)."""

    async def step(self) -> None:
        await self.generate(stop="\n")
        self.finish(self.text)


PromptFn = Callable[[Question, int], Prompt]
ProgramFn = Callable[..., Rollout]


def chat_prompt(question: Question, token_limit: int) -> Prompt:
    """The question as a user message (the LM's chat template applies)."""
    return [{"role": "user", "content": question.prompt}]


def qa_prompt(question: Question, token_limit: int) -> Prompt:
    """The question as plain text ``Q: ...\\nA:`` (no chat template: short and cheap)."""
    return f"Q: {question.prompt}\nA:"


PROMPTS: dict[str, PromptFn] = {"chat": chat_prompt, "qa": qa_prompt}


def group_seed(seed: int, step: int, index: int) -> int:
    """The SMC seed of one group: a pure function of (run seed, step, question index)."""
    return int(np.random.SeedSequence([seed, step, index]).generate_state(1)[0])


async def sample_groups_async(
    lm: LanguageModel,
    questions: Sequence[Question],
    *,
    group_size: int,
    max_tokens: int,
    temperature: float,
    seed: int,
    step: int = 0,
    program: ProgramFn = Rollout,
    prompt: PromptFn = chat_prompt,
    states: dict[str, dict] | None = None,
) -> list[list[Sample]]:
    """One group of ``group_size`` samples per question, all groups run concurrently."""
    states = {} if states is None else states

    async def one(i: int, q: Question) -> list[Sample]:
        model = program(lm, prompt(q, max_tokens), max_tokens=max_tokens, temperature=temperature)
        result = await smc_async(model, group_size, ess_threshold=0.0, seed=group_seed(seed, step, i),
                                 max_steps=10_000)
        state = states.setdefault(q.id, {})
        return [p.to_sample(q, state) for p in result.particles]

    return list(await asyncio.gather(*(one(i, q) for i, q in enumerate(questions))))


def sample_groups(lm: LanguageModel, questions: Sequence[Question], **kwargs: Any) -> list[list[Sample]]:
    """Synchronous `sample_groups_async` (see there for the arguments)."""
    return asyncio.run(sample_groups_async(lm, questions, **kwargs))
