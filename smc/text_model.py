"""`TextModel`: programs that write text, with a prior that defines the target and a proposal
that steers sampling.

The target is the **prior** LM (prompted with ``prior``, the task's content without its
constraint phrasing, such as "Write a sentence about dogs.") restricted by the program's masks, ``condition``s and ``check``. Tokens are
drawn from the **proposal** context (prompted with the full task, plus any ``hint``s), and every
helper corrects the weight back to the prior, so the population targets the same distribution
whatever the proposal says, provided the proposal can draw every token the restricted prior can
(its support covers the target's; a proposal that never writes a token the target needs cannot
correct for it). Every restriction a helper places on the next token binds the prior and the
proposal alike, and applies to that one token, weighted once:

- ``await self.next_token(mask=None) -> Token``: one token (restricted to ``mask``);
  ``log_w += log p_prior(t) - log q(t | mask)``.
- ``await self.next_word(max_chars=None) -> str``: one whitespace-delimited word (trailing
  punctuation included, surrounding whitespace stripped), token by token.
- ``await self.extend(stop=..., max_tokens=..., max_chars=..., allow_eos=True, mask=None) -> Chunk``:
  a chunk up to a stop string, EOS or a budget, generated for all particles in one batched loop
  (``mask``: every token of the chunk lies in it).
- ``await self.constrain_step(spec) -> ConstrainedSpan``: one token inside a `Regex`, `Grammar`
  or `JsonSchema` (call once per step until ``span.done``); target prior * 1[text matches].
- ``await self.extend_with(text) -> float``: force ``text``; ``log_w += log p_prior(text)``.
- ``await self.end()``: force end of sequence (``log_w += log p_prior(EOS)``) and ``finish``
  with the text.
- ``self.hint(text)``: add guidance to the proposal only (the target is unchanged);
  ``self.hints`` lists the hints given so far (clear it to drop them).
- ``self.text``: the text so far; ``self.n_tokens``: its length in tokens.

Without a separate ``proposal`` the prior proposes for itself and the weights only carry the
masks' probabilities. A particle that writes more than ``max_tokens`` tokens dies.
"""

from __future__ import annotations

from collections.abc import Sequence

from .constraints.span import ConstrainedSpan
from .constraints.specs import ConstraintSpec
from .distributions import Distribution
from .lm.base import LanguageModel, Prompt
from .lm.context import Chunk, LMContext, Token
from .lm.vocab import TokenMask
from .model import Model


def as_messages(lm: LanguageModel, prompt: Prompt) -> Prompt:
    """A plain-text instruction becomes a user message when the LM has a chat template."""
    if isinstance(prompt, str) and lm.has_chat_template:
        return [{"role": "user", "content": prompt}]
    return prompt


class TextModel(Model):
    """Base class for text-writing programs (see the module docstring for the helpers).

    Args:
        lm: the follower LM (from ``load_lm``).
        prior: the instruction that defines the target (text, chat messages or token ids).
        proposal: the instruction the sampler sees (default: the prior itself).
        max_tokens: particles writing more tokens than this die.
        temperature: temperature of both contexts (the target is the tempered prior).
    """

    HINT_TEMPLATE = "\n\n(Note to self: {hint})"

    def __init__(
        self,
        lm: LanguageModel,
        prior: Prompt,
        proposal: Prompt | None = None,
        *,
        max_tokens: int = 256,
        temperature: float = 1.0,
    ):
        super().__init__()
        self.lm = lm
        self.max_tokens = max_tokens
        self._prior_prompt = as_messages(lm, prior)
        self._proposal_prompt = as_messages(lm, proposal) if proposal is not None else None
        self.prior = LMContext(lm, self._prior_prompt, temperature=temperature)
        self.proposal = (
            self.prior if proposal is None else LMContext(lm, self._proposal_prompt, temperature=temperature)
        )
        self.hints: list[str] = []

    # ----- state -----------------------------------------------------------------------------
    @property
    def text(self) -> str:
        return self.prior.text

    @property
    def n_tokens(self) -> int:
        return self.prior.n_generated

    @property
    def separate_proposal(self) -> bool:
        return self.proposal is not self.prior

    def describe(self) -> str:
        return self.output if isinstance(self.output, str) else self.text

    # ----- helpers ---------------------------------------------------------------------------
    @property
    def budget_reason(self) -> str:
        return f"budget: wrote more than max_tokens={self.max_tokens} tokens"

    async def _draw(self, target: Distribution, proposal: Distribution):
        if self.separate_proposal:
            value = await self.sample(target, proposal=proposal)
        else:
            value = await self.sample(target)
        self.condition(self.n_tokens <= self.max_tokens, self.budget_reason)
        return value

    async def _restrict(self, mask: TokenMask) -> None:
        """Restrict the next token to ``mask`` in the target (``log_w += log p_prior(mask)``, the
        prior renormalised) and in the proposal, so that the next helper draws inside it."""
        await self.observe(self.prior.mask_dist(mask), True)
        if self.separate_proposal:
            self.proposal.restrict(mask)

    async def next_token(self, mask: TokenMask | None = None) -> Token:
        """Sample one token, optionally restricted to ``mask`` (the target becomes prior * 1[mask])."""
        return await self._draw(self.prior.next_token(mask), self.proposal.next_token(mask))

    async def next_word(self, max_chars: int | None = None) -> str:
        """Sample one word: a token with visible text, then tokens until the next one starts with
        whitespace or is special (EOS).

        The word keeps attached punctuation ("cat." is one word); surrounding whitespace is
        stripped. With ``max_chars`` the word ends once it is that long (the next token is then
        restricted to start a new word or end), and a longer word kills the particle.
        """
        masks = self.lm.masks
        cont = masks.where("continues_word", lambda t: bool(t) and not t[0].isspace())
        visible = masks.where("visible", lambda t: bool(t.strip()))
        word = (await self.next_token(mask=visible)).text
        while True:
            if max_chars is not None and len(word.strip()) >= max_chars:
                await self._restrict(~cont)
                break
            goes_on = await self._draw(self.prior.mask_dist(cont), self.proposal.mask_dist(cont))
            if not goes_on:
                break
            word += (await self._draw(self.prior.next_token(), self.proposal.next_token())).text
        self.condition(max_chars is None or len(word.strip()) <= max_chars)
        return word.strip()

    async def extend(
        self,
        stop: str | Sequence[str] = (),
        *,
        max_tokens: int = 32,
        max_chars: int | None = None,
        allow_eos: bool = True,
        mask: TokenMask | None = None,
    ) -> Chunk:
        """Generate up to a stop string (kept in the chunk), EOS, or a budget; all particles batch together.

        With ``allow_eos=False`` the target is the prior restricted to chunks without EOS; with
        ``mask`` it is restricted to chunks every token of which lies in ``mask`` (add
        ``lm.masks.eos`` to let the chunk end the text). A restriction left pending by the previous
        helper (e.g. ``next_word``'s word end) applies to the chunk's first token only.
        """
        kw = dict(stop=stop, max_tokens=max_tokens, max_chars=max_chars, allow_eos=allow_eos, mask=mask)
        return await self._draw(self.prior.chunk(**kw), self.proposal.chunk(**kw))

    async def constrain_step(self, spec: ConstraintSpec) -> ConstrainedSpan:
        """Sample one token inside ``spec`` (a `Regex`, `Grammar` or `JsonSchema`); returns the span.

        The first call starts a span at the current text; later calls with an equal spec continue
        it until it is ``done`` (then the next call starts a new one). Target: the prior times
        1[the span's text stays a prefix of the language; EOS only after a full match]; the token
        comes from the proposal restricted to viable tokens, weighted back to the prior. Call it
        once per step until ``span.done`` (EOS drawn, or nothing longer matches); ``span.text``
        is the constrained text.
        """
        span = getattr(self, "_span", None)
        if span is None or span.spec != spec or span.done:
            span = self._span = self.prior.constrain(spec)
        await self.sample(span.next_token(proposal=self.proposal if self.separate_proposal else None))
        self.condition(self.n_tokens <= self.max_tokens, self.budget_reason)
        return span

    async def extend_with(self, text: str) -> float:
        """Force ``text`` and score it under the prior; returns ``log p_prior(text)``."""
        ids = self.lm.encode(text)
        log_p = float((await self.prior.append(ids)).sum())
        if self.separate_proposal:
            await self.proposal.append(ids)
        self.score(log_p)
        self.condition(self.n_tokens <= self.max_tokens, self.budget_reason)
        return log_p

    async def end(self) -> None:
        """Force the end of the sequence (scored under the prior) and finish with the text."""
        eos = self.prior.token(self.lm.vocab.eos_id)
        await self.observe(self.prior.next_token(), eos)
        if self.separate_proposal and not self.proposal.ended:
            self.proposal.append_token(eos.id)
        self.finish(self.text)

    def hint(self, text: str) -> None:
        """Add ``text`` as guidance to the proposal only (the target is unchanged).

        The proposal is rebuilt from its prompt (the prior's if there was none) with every hint so
        far appended through ``HINT_TEMPLATE``, followed by the text generated so far; a pending
        restriction of the next token carries over to it.
        """
        pending = self.proposal.restriction
        self.hints.append(text)
        base = self._proposal_prompt if self._proposal_prompt is not None else self._prior_prompt
        note = "".join(self.HINT_TEMPLATE.format(hint=h) for h in self.hints)
        if isinstance(base, str):
            prompt: Prompt = base + note
        elif base and isinstance(base[0], dict):
            prompt = [*base[:-1], {**base[-1], "content": base[-1]["content"] + note}]
        else:
            prompt = list(base) + self.lm.encode(note)
        proposal = LMContext(self.lm, prompt, temperature=self.prior.temperature)
        for t in self.prior.generated_ids:
            proposal.append_token(t)
        if pending is not None:
            proposal.restrict(pending)
        self.proposal = proposal
