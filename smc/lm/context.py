"""`LMContext`: a token sequence growing under one LM, and the distributions it offers.

A context holds the prompt and everything appended since. Its distributions follow the engine's
contract (`selfsteer.smc.distributions`): ``sample``/``log_prob`` never change the context;
``Model.sample``/``observe`` commit the outcome through ``record``.

- ``ctx.next_token(mask=None)``: the next token (a `Token`). With a restriction pending (see
  below) it is the LM's distribution renormalised to the allowed set; with ``mask`` it is that
  distribution times ``1[token in mask]`` (unnormalised), so ``Model.sample`` draws inside the
  mask and adds ``log p(mask)`` to the weight.
- ``ctx.mask_dist(mask)``: ``True`` iff the next token is in ``mask``, with probability
  ``p(mask)``. Observing ``True`` adds ``log p(mask)`` and restricts the next token to ``mask``;
  ``False`` restricts it to the complement. This is how a program steers below the token level.
- ``ctx.chunk(stop=..., max_tokens=..., max_chars=..., allow_eos=..., mask=None)``: a multi-token
  chunk, generated in one batched loop across particles. A pending restriction applies to its
  first token only; ``mask`` restricts every token. With ``allow_eos=False`` or a ``mask`` it
  represents the LM restricted to such chunks (unnormalised), and sampling it adds the allowed
  masses' logs.
- ``ctx.constrain(spec)``: a `ConstrainedSpan` whose tokens keep its text inside a `Regex`,
  `Grammar` or `JsonSchema` (one token per draw; see `selfsteer.smc.constraints.span`).
- ``await ctx.append(ids)``: force tokens and return their log-probabilities (a verb: it
  changes the context; add the result to the weight with ``score`` when it is evidence).

Contexts are cheap to copy: particles share the LM and the KV cache, and a copy that extends
differently gets its own cache rows (copy-on-write inside the backend).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..distributions import Distribution, ZeroProbability, sample_log_probs
from .base import LanguageModel, Prompt
from .vocab import TokenMask, log_mass, restrict_log_probs

if TYPE_CHECKING:
    from ..constraints.span import ConstrainedSpan
    from ..constraints.specs import ConstraintSpec


@dataclass(frozen=True)
class Token:
    """One token: its id, its text, and whether it ends the sequence."""

    id: int
    text: str
    is_eos: bool = False

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Chunk:
    """A generated span: its text, token ids, and how it ended."""

    text: str
    token_ids: tuple[int, ...]
    eos: bool
    stop_reason: str = ""
    log_p: float = 0.0  # sum of token log-probabilities under the context that generated it
    log_mask_mass: float = field(default=0.0, compare=False)
    token_logprobs: tuple[float, ...] = field(default=(), compare=False, repr=False)  # per token, summing to log_p

    def __str__(self) -> str:
        return self.text


class LMContext:
    """A prompt plus appended tokens under ``lm``; ``temperature`` tempers its distribution."""

    def __init__(self, lm: LanguageModel, prompt: Prompt, *, temperature: float = 1.0):
        if not isinstance(lm, LanguageModel):
            raise TypeError(f"LMContext needs a LanguageModel from load_lm(), got {type(lm).__name__}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.lm = lm
        self.tokens: list[int] = lm.prompt_ids(prompt)
        if not self.tokens:
            raise ValueError("the prompt is empty; give at least one token of text")
        self.n_prompt = len(self.tokens)
        self.temperature = float(temperature)
        self.ended = False
        self._handle: Any = None
        self._fed = 0
        self._next: np.ndarray | None = None
        self._allowed: TokenMask | None = None
        self._restricted: np.ndarray | None = None
        self._masses: tuple[np.ndarray | None, dict] = (None, {})

    def __deepcopy__(self, memo):
        new = copy.copy(self)
        new.tokens = list(self.tokens)
        memo[id(self)] = new
        return new

    # ----- state -----------------------------------------------------------------------------
    @property
    def generated_ids(self) -> list[int]:
        return self.tokens[self.n_prompt :]

    @property
    def text(self) -> str:
        """The generated text so far (prompt and special tokens left out)."""
        return self.lm.decode(self.generated_ids)

    @property
    def n_generated(self) -> int:
        return len(self.tokens) - self.n_prompt

    def token(self, token_id: int) -> Token:
        vocab = self.lm.vocab
        return Token(int(token_id), vocab.texts[token_id], int(token_id) in vocab.eos_ids)

    async def next_logprobs(self) -> np.ndarray:
        """The LM's next-token log-probabilities (V,), tempered, ignoring any restriction."""
        self._check_open()
        if self._next is None:
            out = await self.lm.feed(
                self._handle, self.tokens[self._fed :], self.temperature, want_token_logprobs=False
            )
            self._handle, self._fed, self._next = out.handle, len(self.tokens), out.next_logprobs
        return self._next

    async def current_logprobs(self) -> np.ndarray:
        """Next-token log-probabilities renormalised to the pending restriction (if any)."""
        lp = await self.next_logprobs()
        if self._allowed is None:
            return lp
        if self._restricted is None:
            r = restrict_log_probs(lp, self._allowed)
            z = self._log_mass(lp, self._allowed)
            self._restricted = r - z if z > -np.inf else r
        return self._restricted

    def _log_mass(self, log_p: np.ndarray, mask: TokenMask) -> float:
        """`log_mass` of ``mask`` under ``log_p``, memoised while ``log_p`` is the same array (a
        mask event and the restriction it records then cost one pass, not two)."""
        row, memo = self._masses
        if row is not log_p:
            memo = {}
            self._masses = (log_p, memo)
        if id(mask) not in memo:
            memo[id(mask)] = (mask, log_mass(log_p, mask))  # the mask is kept, so its id stays unique
        return memo[id(mask)][1]

    # ----- distributions -----------------------------------------------------------------------
    def next_token(self, mask: TokenMask | None = None) -> NextToken:
        return NextToken(self, None if mask is None else self._checked(mask))

    def mask_dist(self, mask: TokenMask) -> MaskEvent:
        return MaskEvent(self, self._checked(mask))

    def chunk(
        self,
        *,
        stop: str | list[str] | tuple[str, ...] = (),
        max_tokens: int = 32,
        max_chars: int | None = None,
        allow_eos: bool = True,
        mask: TokenMask | None = None,
    ) -> ChunkDist:
        return ChunkDist(self, stop=(stop,) if isinstance(stop, str) else tuple(stop), max_tokens=max_tokens,
                         max_chars=max_chars, allow_eos=allow_eos, mask=None if mask is None else self._checked(mask))

    def constrain(self, spec: ConstraintSpec) -> ConstrainedSpan:
        """Start a span here whose text must match ``spec`` (`Regex`, `Grammar`, `JsonSchema`);
        draw its tokens with ``await model.sample(span.next_token())`` (see `selfsteer.smc.constraints.span`)."""
        from ..constraints.span import ConstrainedSpan

        return ConstrainedSpan(self, spec)

    @property
    def restriction(self) -> TokenMask | None:
        """The pending restriction of the next token (None when there is none)."""
        return self._allowed

    # ----- verbs -----------------------------------------------------------------------------
    def restrict(self, mask: TokenMask) -> None:
        """Limit the next token to ``mask`` (intersected with any pending restriction), unweighted."""
        self._check_open()
        mask = self._checked(mask)
        self._allowed = mask if self._allowed is None else (self._allowed & mask)
        self._restricted = None

    def append_token(self, token_id: int) -> None:
        """Append one token without scoring it (the distributions' ``record`` uses this)."""
        self._check_open()
        self.tokens.append(int(token_id))
        self._next, self._allowed, self._restricted = None, None, None
        if int(token_id) in self.lm.vocab.eos_ids:
            self.ended = True

    async def append(self, ids: list[int] | str) -> np.ndarray:
        """Force tokens (or text) and return each one's log-probability (restriction applied to the first).

        EOS may only come last; it ends the context.
        """
        self._check_open()
        ids = self.lm.encode(ids) if isinstance(ids, str) else [int(i) for i in ids]
        if not ids:
            return np.zeros(0)
        eos = self.lm.vocab.eos_ids
        if any(i in eos for i in ids[:-1]):
            raise ValueError("EOS can only be the last appended token")
        body, ends = (ids[:-1], True) if ids[-1] in eos else (ids, False)
        first = float((await self.current_logprobs())[ids[0]])
        lps = [first]
        if body:
            out = await self.lm.feed(self._handle, body, self.temperature)
            self._handle, self._next = out.handle, out.next_logprobs
            self.tokens.extend(body)
            self._fed = len(self.tokens)
            lps.extend(out.token_logprobs.tolist())
            self._allowed, self._restricted = None, None
        if ends:
            if body:
                lps.append(float((await self.next_logprobs())[ids[-1]]))
            self.append_token(ids[-1])
        return np.array(lps)

    def _checked(self, mask: TokenMask) -> TokenMask:
        """``mask``, if it is a `TokenMask` over this LM's vocabulary; otherwise a clear error."""
        if not isinstance(mask, TokenMask):
            raise TypeError(
                f"a token mask must be a TokenMask, got {type(mask).__name__}: use lm.masks (e.g. "
                "lm.masks.without('e')) or TokenMask(name, bool_array_over_the_vocabulary)"
            )
        if len(mask.array) != self.lm.vocab.size:
            raise ValueError(
                f"{mask!r} covers {len(mask.array)} ids but {self.lm.name}'s vocabulary has "
                f"{self.lm.vocab.size}: build it from this LM's lm.masks"
            )
        return mask

    def _check_open(self) -> None:
        if self.ended:
            raise ValueError("this context has ended (EOS was appended); start a new LMContext")


class NextToken(Distribution):
    """The next token of a context (see `LMContext`), optionally restricted to ``mask``.

    With ``p`` the context's current next-token distribution, this is the measure
    ``p(t) 1[t in mask]`` (``p`` itself without a mask): ``sample`` draws from it renormalised and
    returns ``log p(t) - log p(mask)``, ``log_prob(t)`` is ``log p(t)`` inside the mask and ``-inf``
    outside, and ``propose`` returns the token with the weight ``log p(mask)``. While the context
    has no next-token distribution on the host, the backend draws the token itself (the
    transformers backend on the model's device, reading back only the id and two numbers).
    """

    def __init__(self, ctx: LMContext, mask: TokenMask | None = None):
        self.ctx, self.mask = ctx, mask
        self._covered: tuple[Any, int] | None = None  # a backend draw's handle and the length it covers

    def _id(self, value: Token | int) -> int:
        return value.id if isinstance(value, Token) else int(value)

    async def _draw(self, rng) -> tuple[Token, float, float]:
        """One draw: (token, log p(token), log p(mask))."""
        ctx = self.ctx
        ctx._check_open()
        if ctx._next is None and ctx._allowed is None:
            res = await ctx.lm.generate(
                ctx._handle, ctx.tokens[ctx._fed :], rng, temperature=ctx.temperature, max_tokens=1,
                disallowed=None if self.mask is None else self.mask.excluded,
            )
            self._covered = (res.handle, len(ctx.tokens))
            return ctx.token(res.tokens[0]), float(res.token_logprobs[0]), res.log_mask_mass
        lp = await ctx.current_logprobs()
        if self.mask is None:
            i = sample_log_probs(rng, lp)
            return ctx.token(i), float(lp[i]), 0.0
        log_p_mask = ctx._log_mass(lp, self.mask)
        if log_p_mask == -np.inf:
            raise ZeroProbability(f"no token in {self.mask.name} has probability above zero")
        i = sample_log_probs(rng, restrict_log_probs(lp, self.mask))
        return ctx.token(i), float(lp[i]), log_p_mask

    async def sample(self, rng):
        token, log_p, log_p_mask = await self._draw(rng)
        return token, log_p - log_p_mask

    async def propose(self, rng):
        token, _, log_p_mask = await self._draw(rng)
        return token, log_p_mask

    async def log_prob(self, value):
        i = self._id(value)
        if self.mask is not None and i not in self.mask:
            return -np.inf
        return float((await self.ctx.current_logprobs())[i])

    def record(self, value):
        ctx = self.ctx
        if self._covered is not None and self._covered[1] == len(ctx.tokens) and ctx._next is None:
            ctx._handle, ctx._fed = self._covered  # the draw's forward pass already holds these tokens
        ctx.append_token(self._id(value))


class MaskEvent(Distribution):
    """``True`` iff the next token falls in ``mask``; recording restricts the next token accordingly."""

    def __init__(self, ctx: LMContext, mask: TokenMask):
        self.ctx, self.mask = ctx, mask

    async def _log_p_true(self) -> float:
        return self.ctx._log_mass(await self.ctx.current_logprobs(), self.mask)

    async def sample(self, rng):
        log_p = await self._log_p_true()
        value = bool(rng.random() < np.exp(log_p))
        return value, await self.log_prob(value)

    async def log_prob(self, value):
        log_p = await self._log_p_true()
        if value:
            return log_p
        return float(np.log1p(-np.exp(log_p))) if log_p < 0 else -np.inf

    def record(self, value):
        self.ctx.restrict(self.mask if value else ~self.mask)


class ChunkDist(Distribution):
    """A chunk generated by a context's LM up to a stop string, EOS or a budget (see `LMContext`).

    Its first token follows the context's current distribution (renormalised to a pending
    restriction, as for `NextToken`), the others the LM; ``mask`` (if given) and, with
    ``allow_eos=False``, the exclusion of EOS apply to every token. ``sample`` returns the chunk
    and ``log q`` (its probability under the sampler, which draws inside those limits).
    ``log_prob(chunk)`` is the log of the measure this represents as a target: the chunk's
    probability, and ``-inf`` for a chunk with a token outside ``mask`` or an EOS that is not
    allowed. ``propose`` therefore returns the weight ``log P(allowed)`` summed over the chunk's
    steps (0 when every token is allowed).
    """

    def __init__(self, ctx: LMContext, *, stop, max_tokens, max_chars, allow_eos, mask=None):
        if max_tokens < 1:
            raise ValueError("max_tokens must be >= 1")
        self.ctx = ctx
        self.stop, self.max_tokens, self.max_chars, self.allow_eos = stop, max_tokens, max_chars, allow_eos
        self.mask: TokenMask | None = mask
        self._known: dict[tuple[int, ...], tuple[float, LMContext]] = {}

    def _disallowed(self) -> np.ndarray | None:
        bad = None if self.allow_eos else self.ctx.lm.masks.eos.array
        if self.mask is not None:
            bad = self.mask.excluded if bad is None else (bad | self.mask.excluded)
        return bad

    async def _generate(self, rng) -> Chunk:
        ctx = self.ctx
        ctx._check_open()
        first = await ctx.current_logprobs() if ctx._allowed is not None else ctx._next
        res = await ctx.lm.generate(
            ctx._handle, ctx.tokens[ctx._fed :], rng, temperature=ctx.temperature, stop=self.stop,
            max_tokens=self.max_tokens, max_chars=self.max_chars, disallowed=self._disallowed(),
            next_logprobs=first,
        )
        ids = tuple(res.tokens)
        log_p = float(np.sum(res.token_logprobs))
        after = copy.deepcopy(ctx)
        after.tokens.extend(ids)
        after._handle, after._fed, after._next = res.handle, len(after.tokens) - 1, None
        after._allowed, after._restricted = None, None
        after.ended = ids[-1] in ctx.lm.vocab.eos_ids
        self._known[ids] = (log_p, after)
        return Chunk(ctx.lm.decode(ids), ids, after.ended, res.stop_reason, log_p, res.log_mask_mass,
                     tuple(float(x) for x in res.token_logprobs))

    async def sample(self, rng):
        chunk = await self._generate(rng)
        return chunk, chunk.log_p - chunk.log_mask_mass

    async def propose(self, rng):
        chunk = await self._generate(rng)
        return chunk, chunk.log_mask_mass

    async def log_prob(self, value: Chunk | str) -> float:
        ids = self._ids(value)
        if not ids:
            return 0.0
        eos = self.ctx.lm.vocab.eos_ids
        if any(i in eos for i in ids[:-1]) or (not self.allow_eos and ids[-1] in eos):
            return -np.inf
        if self.mask is not None and not all(i in self.mask for i in ids):
            return -np.inf
        if ids not in self._known:
            after = copy.deepcopy(self.ctx)
            log_p = float(np.sum(await after.append(list(ids))))
            self._known[ids] = (log_p, after)
        return self._known[ids][0]

    def record(self, value: Chunk | str) -> None:
        ids = self._ids(value)
        if ids in self._known:
            after = self._known[ids][1]
            for name in ("tokens", "_handle", "_fed", "_next", "_allowed", "_restricted", "ended"):
                setattr(self.ctx, name, getattr(after, name))
        else:
            for i in ids:
                self.ctx.append_token(i)
        self._known.clear()

    def _ids(self, value: Chunk | str) -> tuple[int, ...]:
        if isinstance(value, Chunk):
            return value.token_ids
        return tuple(self.ctx.lm.encode(value))
