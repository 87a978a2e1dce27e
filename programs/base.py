"""`LibraryProgram`: the base class of the hand-written programs.

A library program is built as ``cls(lm, task, **params)``. Its **target** is the follower asked for
the task's content without its constraints (`programs.topic.content_instruction`: "Write a
sentence about a bicycle."; the class's ``PRIOR``, e.g. "Write a sentence.", when the task names
no topic) and restricted by the program's
masks, forced text, ``condition``s and ``check``; its **proposal** is the follower prompted with
the user's task (plus notes from ``note``). Every helper below is properly weighted for that
target (each reduces to `TextModel` primitives):

- ``prose_mask(new_word=..., end=...)``: the prose tokens (see `ProseTokens`) that may come next.
- ``await prose_token(new_word=..., end=...)``: draw one of them (ending cleanly when no new
  word may start).
- ``await word_ends()``: sample whether the current word is complete (the next token does not
  continue it); the next token is restricted accordingly.
- ``await complete_word(allowed=...)``: continue the current word with allowed tokens until a
  sampled event ends it, so that a step ends at a word boundary and resampling compares whole words.
- ``await word_goes_on(allowed)``: sample whether the word continues within ``allowed``; when it
  ends, a twist looks ahead to the prior's wish to continue it with a disallowed token.
- ``await propose_text(candidates)``: maybe force one of several texts at a word boundary.
- ``await one_of(options)``: write one of several strings, token by token, the LM choosing.
- ``await chunk_within(mask, stop=...)``: a chunk every token of which lies in ``mask``
  (target: prior restricted to such chunks).
- ``note(text)``: replace the proposal's note (a hint; the target is unchanged).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from selfsteer.smc import Categorical, Chunk, LanguageModel, TextModel, Token, TokenMask

from .registry import ProgramSpec
from .tokens import END_MARKS, LETTERS_DIGITS, ProseTokens
from .topic import content_instruction

MAX_WORD_CHARS = 18  # prose_mask stops a word from growing past this many characters


class LibraryProgram(TextModel):
    """Base of library programs: the task steers the proposal; its content (topic and genre, see
    `programs.topic`) or else ``PRIOR`` defines the target.

    Args:
        lm: the follower LM.
        task: the user's task in plain language (the proposal's prompt).
        max_tokens: particles writing more tokens than this die.

    Attributes: ``self.tokens``: the LM's `ProseTokens` (prose token classes, e.g.
    ``self.tokens.word_start``); ``self.task``: the task text; ``PRIOR`` (class attribute): the
    prior's instruction, the task's content without its constraints.
    """

    PRIOR: ClassVar[str] = "Write a sentence."
    SPEC: ClassVar[ProgramSpec]

    def __init__(self, lm: LanguageModel, task: str, *, max_tokens: int = 64):
        if not isinstance(task, str) or not task.strip():
            raise ValueError("a library program needs the task as non-empty text")
        self.content = content_instruction(task, self.PRIOR)
        super().__init__(lm, self.content, task, max_tokens=max_tokens)
        self.task = task
        self.tokens = ProseTokens.of(lm)

    # ----- masks ---------------------------------------------------------------------------
    def prose_mask(self, *, new_word: bool, end: bool, cont: bool = True) -> TokenMask:
        """Prose tokens that may come next.

        At the start of the text or of a line: an ``opening`` token. After a sentence end: a
        ``capital_start``. After a word: its continuation (``cont``, and only while the word is
        shorter than ``MAX_WORD_CHARS``, with one apostrophe at most), a comma or a new word
        (``new_word``), a sentence end (``end``). After a comma: a new word (``new_word``).
        """
        t = self.tokens
        text = self.text
        if not text or text.endswith("\n"):
            return t.opening
        if text.endswith(END_MARKS):
            return t.capital_start
        mask = t.word_start if new_word else t.none
        if text[-1] in LETTERS_DIGITS:
            if cont:
                mask = mask | self.continuation()
            if new_word:
                mask = mask | t.comma
            if end:
                mask = mask | t.ends
        return mask

    def continuation(self) -> TokenMask:
        """Tokens that continue the word at the end of the text: more digits after a digit, more
        letters after a letter (one apostrophe per word); none once the word has
        ``MAX_WORD_CHARS`` characters, or after whitespace or punctuation."""
        t = self.tokens
        text = self.text
        if not text or text[-1] not in LETTERS_DIGITS or len(text.split()[-1]) >= MAX_WORD_CHARS:
            return t.none
        if text[-1].isdigit():
            return t.digit_cont
        word = text.split()[-1]
        return t.word_cont_plain if "'" in word or "’" in word else t.word_cont

    async def prose_token(self, *, new_word: bool, end: bool, cont: bool = True, extra: TokenMask | None = None) -> Token:
        """The next prose token (within ``extra`` if given; see ``prose_mask``).

        Where no new word may start but the sentence may end, it first samples whether the
        current word is complete (``word_ends``) and, if so, writes an end mark: the proposal's
        wish for another word becomes an end rather than a distorted continuation.
        """
        if end and not new_word and cont and self.text[-1:] in LETTERS_DIGITS and await self.word_ends():
            return await self.next_token(self.tokens.ends)
        mask = self.prose_mask(new_word=new_word, end=end, cont=cont)
        return await self.next_token(mask if extra is None else mask & extra)

    # ----- helpers -------------------------------------------------------------------------
    async def word_ends(self) -> bool:
        """Sample whether the current word is complete, i.e. the next token is not in
        ``continuation()`` (a word of ``MAX_WORD_CHARS`` characters is complete).

        Weighted like a token draw: ``log_w += log p(event) - log q(event)``; the next token is
        then restricted to continuations (False) or non-continuations (True).
        """
        cont = self.continuation()
        if cont is self.tokens.none:
            return True
        goes_on = await self.sample(self.prior.mask_dist(cont), proposal=self.proposal.mask_dist(cont))
        return not goes_on

    async def complete_word(self, allowed: TokenMask | None = None) -> None:
        """Continue the word at the end of the text, token by token, while a sampled event says
        the next token is an allowed continuation (``continuation() & allowed``, e.g. tokens
        without a banned letter); otherwise the word is complete and the next token is restricted
        to not be one (where no continuation is allowed, to not continue the word at all).
        Weighted like ``word_ends``. A banned continuation never forces an odd one: its mass
        goes to ending the word.

        Call it after a step's token so that the step ends at a word boundary: resampling then
        compares particles on whole words, never on a word's first piece.
        """
        while not self.finished and self.text[-1:] in LETTERS_DIGITS:
            cont = self.continuation() if allowed is None else self.continuation() & allowed
            if not cont.array.any():
                await self._restrict(~self.continuation())
                return
            if not await self.word_goes_on(cont):
                return
            await self.next_token(cont)

    async def word_goes_on(self, allowed: TokenMask) -> bool:
        """Sample whether the next token continues the current word within ``allowed`` (a subset
        of ``continuation()``); the next token is then restricted to ``allowed`` or its complement.

        Weighted like ``word_ends``. When the word ends, a twist adds the prior's log-probability
        that it really ends here rather than going on with a continuation outside ``allowed``
        (e.g. "L" when the prior wanted "Lamp" and "a" is banned): look-ahead for the next
        token's weight, so resampling at this word boundary already sees it.
        """
        if await self._draw(self.prior.mask_dist(allowed), self.proposal.mask_dist(allowed)):
            return True
        ends = await self.prior.mask_dist(self.continuation()).log_prob(False)
        if math.isfinite(ends) and ends < 0:
            self.twist(ends)
        return False

    async def propose_text(self, candidates: Sequence[str], *, at_least: float = 0.0) -> str | None:
        """Maybe write one of ``candidates`` (texts such as " mango") next; return it, or None.

        Candidate c is chosen with probability ``rho_c = max(q(first token of c), at_least)``
        (scaled to sum to at most 1) and written whole; with the remaining probability nothing is
        written and the next token may not start any candidate. Forcing adds
        ``log p_prior(c) - log rho_c``; declining adds ``-log(1 - sum rho)`` (the next token's
        draw adds its own ``log p - log q``). The two branches cover disjoint first tokens, so
        this is properly weighted for the prior restricted to texts where a candidate's first
        token always begins the whole candidate.
        """
        firsts = [self.lm.encode(c)[0] for c in candidates]
        step = self.proposal.next_token()
        rhos = [max(math.exp(await step.log_prob(f)), at_least) for f in firsts]
        if sum(rhos) > 1.0:
            rhos = [r / sum(rhos) for r in rhos]
        decline = max(1.0 - sum(rhos), 0.0)
        choice = await self.sample(Categorical(values=[None, *candidates], probs=[decline, *rhos]))
        if choice is None:
            self.score(-math.log(decline))
            blocked = np.zeros(self.lm.vocab.size, dtype=bool)
            blocked[firsts] = True
            self.proposal.restrict(TokenMask("not_candidates", ~blocked))
            return None
        self.score(-math.log(rhos[candidates.index(choice)]))
        await self.extend_with(choice)
        return choice

    async def one_of(self, options: Sequence[str]) -> str:
        """Write one of ``options`` (a prefix-free set of strings) token by token; return it."""
        encoded = {opt: tuple(self.lm.encode(opt)) for opt in options}
        if not encoded:
            raise ValueError("one_of needs at least one option")
        seqs = set(encoded.values())
        for s in seqs:
            if any(o != s and o[: len(s)] == s for o in seqs):
                raise ValueError(f"one_of options must be prefix-free; {self.lm.decode(s)!r} starts another")
        alive = list(encoded)
        i = 0
        while len(alive) > 1 or i < len(encoded[alive[0]]):
            ids = np.zeros(self.lm.vocab.size, dtype=bool)
            ids[[encoded[o][i] for o in alive]] = True
            tok = await self.next_token(TokenMask("one_of", ids))
            alive = [o for o in alive if encoded[o][i] == tok.id]
            i += 1
        return alive[0]

    async def chunk_within(
        self, mask: TokenMask, *, stop: str | Sequence[str] = (), max_tokens: int = 32, allow_eos: bool = False
    ) -> Chunk:
        """A chunk (up to ``stop``, EOS or ``max_tokens``) all of whose tokens lie in ``mask``.

        The proposal samples every token from its distribution restricted to ``mask``; the weight
        ``p_prior(chunk) / q(chunk)`` targets the prior restricted to such chunks. With
        ``allow_eos`` add ``lm.masks.eos`` to ``mask`` where the chunk may end the text.
        """
        return await self.extend(stop=stop, max_tokens=max_tokens, allow_eos=allow_eos, mask=mask)

    def note(self, text: str) -> None:
        """Replace the proposal's note to self with ``text`` (the target is unchanged)."""
        self.hints.clear()
        self.hint(text)
