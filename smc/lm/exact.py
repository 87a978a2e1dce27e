"""`ExactLM`: a tiny LM whose sequence probabilities can be enumerated exactly (for tests).

The next-token distribution after a context is a fixed pseudo-random function of the context's
token ids (a Dirichlet draw seeded by their hash), or a function you pass in. Every sequence ends
with EOS within ``max_len`` tokens of the prompt, so the continuations of a prompt form a finite
set that `continuations` lists with their exact probabilities.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from .base import FeedRequest, FeedResult, LanguageModel
from .vocab import Vocabulary


class ExactLM(LanguageModel):
    """A small exact LM over ``tokens`` plus an EOS token (the last id).

    ``next_probs`` (optional) maps a context (tuple of ids) to probabilities over the whole
    vocabulary; by default they are Dirichlet(``concentration``) draws seeded by the context.
    """

    def __init__(
        self,
        tokens: Sequence[str] = ("a", "b", " c"),
        *,
        eos: str = "<eos>",
        max_len: int = 4,
        seed: int = 0,
        concentration: float = 1.0,
        next_probs: Callable[[tuple[int, ...]], np.ndarray] | None = None,
    ):
        super().__init__()
        self.name = f"exact-{len(tokens)}tok"
        self.strings = list(tokens) + [eos]
        self.vocab = Vocabulary([s.encode() for s in self.strings], eos_ids=[len(tokens)])
        self.max_len = max_len
        self.seed = seed
        self.concentration = concentration
        self._custom = next_probs
        self._cache: dict[tuple[int, ...], np.ndarray] = {}

    # ----- exact distribution --------------------------------------------------------------
    def next_probs(self, context: tuple[int, ...]) -> np.ndarray:
        """Exact next-token probabilities (V,) after ``context`` (tempering not applied)."""
        if context not in self._cache:
            if self._custom is not None:
                p = np.asarray(self._custom(context), dtype=np.float64)
            elif len(context) >= self.max_len:
                p = np.zeros(self.vocab.size)
                p[self.vocab.eos_id] = 1.0
            else:
                digest = hashlib.sha256(repr((self.seed, context)).encode()).digest()
                rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
                p = rng.dirichlet(np.full(self.vocab.size, self.concentration))
            self._cache[context] = p / p.sum()
        return self._cache[context]

    def next_logprobs(self, context: tuple[int, ...], temperature: float = 1.0) -> np.ndarray:
        with np.errstate(divide="ignore"):
            lp = np.log(self.next_probs(context)) / temperature
        return lp - np.logaddexp.reduce(lp)

    def sequence_logprob(self, prompt: Sequence[int], continuation: Sequence[int]) -> float:
        """``log p(continuation | prompt)``."""
        ctx, total = tuple(prompt), 0.0
        for t in continuation:
            total += float(self.next_logprobs(ctx)[t])
            ctx = ctx + (t,)
        return total

    def continuations(self, prompt: Sequence[int], max_tokens: int = 16) -> Iterator[tuple[tuple[int, ...], float]]:
        """Every EOS-terminated continuation of ``prompt`` (EOS included) with its log-probability."""

        def walk(ctx: tuple[int, ...], gen: tuple[int, ...], lp: float):
            if len(gen) > max_tokens:
                raise ValueError("continuations exceed max_tokens; raise it or lower max_len")
            probs = self.next_probs(ctx)
            for t in np.flatnonzero(probs > 0):
                t = int(t)
                lpt = lp + float(np.log(probs[t]))
                if t in self.vocab.eos_ids:
                    yield gen + (t,), lpt
                else:
                    yield from walk(ctx + (t,), gen + (t,), lpt)

        yield from walk(tuple(prompt), (), 0.0)

    # ----- LanguageModel ---------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        """Greedy longest-match tokenisation over the token strings."""
        ids, i = [], 0
        order = sorted(range(len(self.strings) - 1), key=lambda j: -len(self.strings[j]))
        while i < len(text):
            for j in order:
                s = self.strings[j]
                if s and text.startswith(s, i):
                    ids.append(j)
                    i += len(s)
                    break
            else:
                raise ValueError(f"ExactLM cannot tokenise {text[i:]!r} with tokens {self.strings[:-1]}")
        return ids

    def _process(self, requests: list[FeedRequest]) -> list[FeedResult]:
        out = []
        for r in requests:
            ctx = tuple(r.handle or ())
            lps = []
            for t in r.tokens:
                ctx = ctx + (t,)
                lps.append(self.next_logprobs(ctx, r.temperature))
            gathered = np.array([lps[i][r.tokens[i + 1]] for i in range(len(r.tokens) - 1)])
            nxt = lps[-1].copy()
            nxt.flags.writeable = False
            out.append(FeedResult(ctx, gathered, nxt))
        return out
