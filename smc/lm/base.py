"""The contract every LM backend implements.

A backend owns a tokenizer, a `Vocabulary` and a KV store. Contexts talk to it through two
batched, asynchronous operations:

- ``feed(handle, tokens, temperature) -> FeedResult``: append ``tokens`` to the sequence that
  ``handle`` covers (``None``: the empty sequence) and return the new handle, the log-probability
  of each token after the first (``token_logprobs[i] = log p(tokens[i+1] | ..., tokens[:i+1])``)
  and the full next-token log-distribution after the last token. Handles are immutable from the
  caller's side: feeding the same handle twice gives two independent continuations.
- ``generate(handle, tokens, rng, ...) -> GenerateResult``: feed ``tokens``, then sample a chunk
  token by token from the (tempered) LM until a stop string, EOS, or a token/character budget.

Log-probabilities are always of the tempered distribution ``softmax(logits / temperature)``.
Concurrent calls from many particles are merged into one forward pass per step by `AutoBatcher`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from ..distributions import ZeroProbability, sample_log_probs
from ..weights import logsumexp
from .batching import AutoBatcher
from .vocab import TokenMasks, Vocabulary, restrict_log_probs

Prompt = str | Sequence[dict] | Sequence[int]


@dataclass
class FeedResult:
    handle: Any
    token_logprobs: np.ndarray  # (len(tokens) - 1,)
    next_logprobs: np.ndarray  # (V,), read-only


@dataclass
class GenerateResult:
    tokens: list[int]  # the sampled chunk; ends with EOS if EOS was drawn
    token_logprobs: np.ndarray  # (len(tokens),) log p of each token under the unrestricted LM
    log_mask_mass: float  # sum over steps of log p(allowed set); 0 when nothing is excluded
    stop_reason: str  # "stop" | "eos" | "max_tokens" | "max_chars"
    handle: Any  # covers the sequence up to, not including, the last sampled token


@dataclass
class FeedRequest:
    handle: Any
    tokens: list[int]
    temperature: float
    want_token_logprobs: bool = True  # False: token_logprobs may be left empty (saves work)


@dataclass
class GenerateRequest:
    handle: Any
    tokens: list[int]
    temperature: float
    rng: np.random.Generator
    stopper: StopRule
    disallowed: np.ndarray | None = None  # bool (V,) of ids never to sample (e.g. EOS)
    start_logits: Any = None  # backend-internal: next-token logits when ``tokens`` is empty


@dataclass
class StopRule:
    """When a chunk ends: a stop string completed, EOS drawn, or a budget reached.

    A chunk ends with the first token whose text completes one of ``stop`` (that token is kept,
    with whatever follows the stop string inside it), so chunk boundaries are a stopping time of
    the token process and weights stay exact.
    """

    stop: tuple[str, ...] = ()
    max_tokens: int = 64
    max_chars: int | None = None
    _bytes: bytearray = field(default_factory=bytearray, repr=False)

    def __post_init__(self):
        self._stop_bytes = [s.encode() for s in self.stop if s]
        self._longest = max((len(s) for s in self._stop_bytes), default=0)

    def update(self, token_bytes: bytes, is_eos: bool, n_tokens: int) -> str | None:
        """Record one sampled token; return the stop reason, or None to go on."""
        if is_eos:
            return "eos"
        start = max(len(self._bytes) - self._longest + 1, 0)
        self._bytes.extend(token_bytes)
        if self._stop_bytes:
            tail = bytes(self._bytes[start:])
            if any(s in tail for s in self._stop_bytes):
                return "stop"
        if self.max_chars is not None and len(self._bytes.decode("utf-8", errors="replace")) >= self.max_chars:
            return "max_chars"
        if n_tokens >= self.max_tokens:
            return "max_tokens"
        return None


class LanguageModel(ABC):
    """Base class of LM backends (see the module docstring for the contract)."""

    name: str
    vocab: Vocabulary

    def __init__(self) -> None:
        self.batcher = AutoBatcher(self._process)

    def __deepcopy__(self, memo):
        return self  # particles share the LM

    @cached_property
    def masks(self) -> TokenMasks:
        """Token masks over this LM's vocabulary (each computed once)."""
        return TokenMasks(self.vocab)

    # ----- text <-> tokens -----------------------------------------------------------------
    @abstractmethod
    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` without special tokens."""

    def decode(self, ids: Sequence[int]) -> str:
        return self.vocab.decode(ids)

    @property
    def has_chat_template(self) -> bool:
        return False

    def chat_prompt(self, messages: Sequence[dict]) -> list[int]:
        """Token ids of ``messages`` with the chat template and the assistant turn opened."""
        raise ValueError(f"{self.name} has no chat template; pass the prompt as a string")

    def prompt_ids(self, prompt: Prompt) -> list[int]:
        """Token ids for a prompt given as text, chat messages or ids."""
        if isinstance(prompt, str):
            return self.bos_ids() + self.encode(prompt)
        prompt = list(prompt)
        if prompt and all(isinstance(m, dict) for m in prompt):
            return self.chat_prompt(prompt)
        if all(isinstance(t, (int, np.integer)) for t in prompt):
            return [int(t) for t in prompt]
        raise TypeError("a prompt is a string, a list of {'role', 'content'} messages, or a list of token ids")

    def bos_ids(self) -> list[int]:
        """Tokens that start every text prompt (e.g. BOS); empty by default."""
        return []

    # ----- batched operations ------------------------------------------------------------------
    async def feed(
        self, handle: Any, tokens: Sequence[int], temperature: float = 1.0, *, want_token_logprobs: bool = True
    ) -> FeedResult:
        if not tokens:
            raise ValueError("feed needs at least one token")
        return await self.batcher.submit(FeedRequest(handle, list(tokens), float(temperature), want_token_logprobs))

    async def generate(
        self,
        handle: Any,
        tokens: Sequence[int],
        rng: np.random.Generator,
        *,
        temperature: float = 1.0,
        stop: Sequence[str] = (),
        max_tokens: int = 64,
        max_chars: int | None = None,
        disallowed: np.ndarray | None = None,
        next_logprobs: np.ndarray | None = None,
    ) -> GenerateResult:
        """Sample a chunk after feeding ``tokens`` (see `StopRule` for where it ends).

        With no ``tokens`` to feed, ``next_logprobs`` (the handle's known next-token distribution)
        starts the chunk. The default runs one batched ``feed`` per token; backends override it
        with a fused loop.
        """
        stopper = StopRule(tuple(stop), max_tokens, max_chars)
        if tokens:
            out = await self.feed(handle, tokens, temperature, want_token_logprobs=False)
        elif next_logprobs is not None:
            out = FeedResult(handle, np.zeros(0), next_logprobs)
        else:
            raise ValueError("generate needs tokens to feed or the handle's next_logprobs")
        sampled, lps, log_mass = [], [], 0.0
        while True:
            tok, lp, mass = sample_token(rng, out.next_logprobs, disallowed)
            sampled.append(tok)
            lps.append(lp)
            log_mass += mass
            reason = stopper.update(self.vocab.token_bytes[tok], tok in self.vocab.eos_ids, len(sampled))
            if reason is not None:
                return GenerateResult(sampled, np.array(lps), log_mass, reason, out.handle)
            out = await self.feed(out.handle, [tok], temperature, want_token_logprobs=False)

    @abstractmethod
    def _process(self, requests: list[FeedRequest | GenerateRequest]) -> list[Any]:
        """Serve one batch of requests (called by the batcher, synchronously)."""


def sample_token(
    rng: np.random.Generator, logprobs: np.ndarray, disallowed: np.ndarray | None
) -> tuple[int, float, float]:
    """Draw from ``logprobs`` minus ``disallowed``; returns (id, log p(id), log p(allowed set))."""
    if disallowed is None:
        tok = sample_log_probs(rng, logprobs)
        return tok, float(logprobs[tok]), 0.0
    restricted = restrict_log_probs(logprobs, ~disallowed)
    mass = logsumexp(restricted)
    if mass == -np.inf:
        raise ZeroProbability("every allowed token has probability zero")
    tok = sample_log_probs(rng, restricted)
    return tok, float(logprobs[tok]), mass
