"""COLLIE-style paragraph programs: several sentences under sentence-level constraints.

Each program writes prose tokens (`ProseTokens`): sentences end only with a lone ".", "!" or "?"
token and the next one starts with a capitalised word, so the program always knows which sentence
it is in and how many words it has. ``check`` re-reads the finished paragraph with `programs.text`.
"""

from __future__ import annotations

import re
from typing import Any

from selfsteer.smc import LanguageModel, Token, TokenMask

from .base import LibraryProgram
from .collie_sentences import check_word
from .phrasing import (
    QUOTED,
    ExtractionError,
    bounds_of,
    clause_after,
    count_of,
    require,
    single_words,
    word_limits,
    word_list,
)
from .registry import ProgramSpec
from .text import ends_sentence, same_word, sentences, words
from .tokens import END_MARKS, continues_word

FAMILY = "collie_paragraphs"


def sentence_state(text: str) -> tuple[int, int]:
    """(sentences finished, words in the sentence being written) for text written with prose tokens."""
    finished = sum(text.count(mark) for mark in END_MARKS)
    return finished, len(words(re.split(r"[.!?]", text)[-1]))


def is_paragraph(text: str) -> bool:
    """One line of text ending with a sentence-end mark."""
    text = text.strip()
    return bool(text) and "\n" not in text and ends_sentence(text)


class ParagraphProgram(LibraryProgram):
    """Shared set-up: the prior asks for a paragraph; sentences have ``min_words..max_words`` words."""

    PRIOR = "Write a paragraph."

    def __init__(self, lm: LanguageModel, task: str, *, n_sentences: int, min_words: int, max_words: int):
        if min_words > max_words:
            raise ValueError(f"min_words ({min_words}) is above max_words ({max_words})")
        super().__init__(lm, task, max_tokens=n_sentences * (2 * max_words + 4) + 8)
        self.n_sentences, self.min_words, self.max_words = n_sentences, min_words, max_words
        self.fixed_last = False

    async def free_token(self, *, end: bool = True, extra: TokenMask | None = None) -> Token:
        """One prose token of the current sentence (within ``extra`` if given); a sentence may end
        between ``min_words`` and ``max_words`` words (if ``end``)."""
        _, n = sentence_state(self.text)
        tok = await self.prose_token(
            new_word=n < self.max_words, end=end and n >= self.min_words, cont=not self.fixed_last, extra=extra
        )
        self.fixed_last = False
        return tok

    def all_written(self) -> bool:
        """True once the text ends with the end mark of sentence ``n_sentences``."""
        return self.text.endswith(END_MARKS) and sentence_state(self.text)[0] == self.n_sentences

    def sentences_ok(self, text: str) -> bool:
        sents = sentences(text)
        return (
            is_paragraph(text)
            and len(sents) == self.n_sentences
            and all(self.min_words <= len(words(s)) <= self.max_words for s in sents)
        )


def optional_sentences(task: str) -> dict[str, Any]:
    low, high = bounds_of(task, "sentences?")
    n = count_of(task, "sentences?") or low or high
    return {"n_sentences": n} if n else {}


def read_paragraph_sentence_count(task: str) -> dict[str, Any]:
    """The parameters of ``paragraph_sentence_count`` read from ``task`` (`ExtractionError` naming what is missing)."""
    low, high = bounds_of(task, "sentences?")
    n = count_of(task, "sentences?") or low or high
    params: dict[str, Any] = {"n_sentences": require(n, "the number of sentences")}
    per = clause_after(task, r"\beach\b|\bevery\b")
    if per:
        low, high = bounds_of(per, "words?")
        exact = count_of(per, "words?") if low is None and high is None else None
        params |= word_limits(*((exact, exact) if exact else (low, high)))
    return params


class SentenceCount(ParagraphProgram):
    """A paragraph of exactly ``n_sentences`` sentences of ``min_words..max_words`` words each.

    Strategy: write prose tokens; a sentence may end only between ``min_words`` and
    ``max_words`` words; after the last sentence the text ends.
    Step granularity: one token.
    End conditions: the end mark of sentence ``n_sentences``, then EOS (scored by the prior).
    """

    SPEC = ProgramSpec(
        name="paragraph_sentence_count",
        family=FAMILY,
        covers=frozenset({"segment_count", "segment_words"}),
        extract=read_paragraph_sentence_count,
        description=(
            "Write a paragraph with an exact number of sentences, optionally with each sentence "
            "between a minimum and a maximum number of words."
        ),
        params_schema={
            "type": "object",
            "properties": {
                "n_sentences": {"type": "integer", "minimum": 1, "maximum": 12},
                "min_words": {"type": "integer", "minimum": 1, "maximum": 60, "default": 4},
                "max_words": {"type": "integer", "minimum": 1, "maximum": 80, "default": 30},
            },
            "required": ["n_sentences"],
            "additionalProperties": False,
        },
        examples=[
            ("Generate a paragraph with exactly 4 sentences, each with between 10 and 15 words.", {"n_sentences": 4, "min_words": 10, "max_words": 15}),
            ("Write a paragraph of exactly three sentences about autumn.", {"n_sentences": 3}),
            ("Generate a paragraph with 3 sentences, each with at least 15 words.", {"n_sentences": 3, "min_words": 15}),
            ("Write a paragraph about the desert with exactly 6 sentences.", {"n_sentences": 6}),
            ("Compose a paragraph of 4 sentences, each sentence having at most 12 words.", {"n_sentences": 4, "max_words": 12}),
        ],
    )

    def __init__(self, lm: LanguageModel, task: str, *, n_sentences: int, min_words: int = 4, max_words: int = 30):
        super().__init__(lm, task, n_sentences=n_sentences, min_words=min_words, max_words=max_words)

    async def step(self):
        await self.free_token()
        if self.all_written():
            await self.end()

    def check(self, text: str) -> bool:
        return self.sentences_ok(text)


def read_paragraph_sentence_starts(task: str) -> dict[str, Any]:
    """The parameters of ``paragraph_sentence_starts`` read from ``task`` (`ExtractionError` naming what is missing)."""
    clause = clause_after(task, r"\b(?:begins?|starts?|opens?)\s+with(?:\s+the\s+word)?\b|\bbeginning\s+with(?:\s+the\s+word)?\b")
    words = single_words(word_list(require(clause, "the word every sentence starts with"))[:1], "the first word")
    return {"start_word": words[0]} | optional_sentences(task)


class SentenceStarts(ParagraphProgram):
    """A paragraph of ``n_sentences`` sentences, each beginning with the word ``start_word``.

    Strategy: at the start of every sentence force ``start_word`` (capitalised, scored by the
    prior) and forbid continuing it; then write prose tokens until the sentence ends.
    Step granularity: one token or one forced word.
    End conditions: the end mark of sentence ``n_sentences``, then EOS.
    """

    SPEC = ProgramSpec(
        name="paragraph_sentence_starts",
        family=FAMILY,
        covers=frozenset({"segment_starts", "segment_count"}),
        extract=read_paragraph_sentence_starts,
        description="Write a paragraph in which every sentence begins with the same given word.",
        params_schema={
            "type": "object",
            "properties": {
                "start_word": {"type": "string", "minLength": 1},
                "n_sentences": {"type": "integer", "minimum": 1, "maximum": 12, "default": 3},
            },
            "required": ["start_word"],
            "additionalProperties": False,
        },
        examples=[
            ("Generate a paragraph where each sentence begins with the word 'soft'.", {"start_word": "soft"}),
            ("Write a paragraph of 4 sentences in which every sentence starts with 'Maybe'.", {"start_word": "Maybe", "n_sentences": 4}),
            ("Write three sentences that all begin with the word 'When'.", {"start_word": "When", "n_sentences": 3}),
            ("Compose a paragraph in which each sentence starts with the word 'Sometimes'.", {"start_word": "Sometimes"}),
            ("Write a paragraph of 5 sentences, all beginning with 'I'.", {"start_word": "I", "n_sentences": 5}),
        ],
    )

    def __init__(self, lm: LanguageModel, task: str, *, start_word: str, n_sentences: int = 3):
        super().__init__(lm, task, n_sentences=n_sentences, min_words=4, max_words=25)
        word = check_word(start_word, "start_word")
        self.start_word = word[0].upper() + word[1:]

    async def step(self):
        if not self.text or self.text.endswith(END_MARKS):
            await self.extend_with(self.start_word if not self.text else " " + self.start_word)
            self.fixed_last = True
            return
        await self.free_token()
        if self.all_written():
            await self.end()

    def check(self, text: str) -> bool:
        sents = sentences(text)
        return (
            is_paragraph(text)
            and len(sents) == self.n_sentences
            and all(words(s) and same_word(words(s)[0], self.start_word) for s in sents)
        )


def read_paragraph_forbidden_words(task: str) -> dict[str, Any]:
    """The parameters of ``paragraph_forbidden_words`` read from ``task`` (`ExtractionError` naming what is missing)."""
    clause = clause_after(task, r"\b(?:do not|don't|never|not)\s+(?:use|uses|using|include)\b|\bwithout(?:\s+using)?\b|\bavoid(?:s|ing)?\b|\bforbidden\b|\bbanned\b")
    words = single_words(word_list(require(clause, "the forbidden words")), "the forbidden words")
    return {"forbidden": words} | optional_sentences(task)


class ForbiddenWords(ParagraphProgram):
    """A paragraph of ``n_sentences`` sentences that never uses any of the ``forbidden`` words.

    Strategy: write prose tokens, excluding tokens that spell a forbidden word by themselves; a
    word assembled from pieces is caught by ``condition`` as soon as it is complete.
    Step granularity: one token.
    End conditions: the end mark of sentence ``n_sentences``, then EOS.
    """

    SPEC = ProgramSpec(
        name="paragraph_forbidden_words",
        family=FAMILY,
        covers=frozenset({"banned_words", "segment_count"}),
        extract=read_paragraph_forbidden_words,
        description="Write a paragraph of several sentences that does not use any of a list of forbidden (banned) words.",
        params_schema={
            "type": "object",
            "properties": {
                "forbidden": {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1},
                "n_sentences": {"type": "integer", "minimum": 1, "maximum": 12, "default": 4},
            },
            "required": ["forbidden"],
            "additionalProperties": False,
        },
        examples=[
            ("Generate a paragraph with at least 4 sentences, but do not use the words 'the', 'and' or 'of'.", {"forbidden": ["the", "and", "of"], "n_sentences": 4}),
            ("Write a paragraph about cities without using the words 'car', 'road' or 'street'.", {"forbidden": ["car", "road", "street"]}),
            ("Write 3 sentences about winter and avoid the words 'snow' and 'cold'.", {"forbidden": ["snow", "cold"], "n_sentences": 3}),
            ("Compose a paragraph of 4 sentences about music that never uses the words 'song' or 'sound'.", {"forbidden": ["song", "sound"], "n_sentences": 4}),
            ("Describe a forest in a paragraph, but you must not use the words 'tree', 'green' or 'leaf'.", {"forbidden": ["tree", "green", "leaf"]}),
        ],
    )

    def __init__(self, lm: LanguageModel, task: str, *, forbidden: list[str], n_sentences: int = 4):
        super().__init__(lm, task, n_sentences=n_sentences, min_words=4, max_words=25)
        self.forbidden = [check_word(w, "each forbidden word").lower() for w in forbidden]

    def uses_forbidden(self, text: str) -> bool:
        return any(same_word(w, f) for w in words(text) for f in self.forbidden)

    async def step(self):
        before = self.text
        tok = await self.free_token(extra=self.tokens.not_words(self.forbidden))
        if not continues_word(tok.text):  # every word of `before` is now complete
            self.condition(not self.uses_forbidden(before))
        if self.all_written():
            await self.end()

    def check(self, text: str) -> bool:
        return is_paragraph(text) and len(sentences(text)) == self.n_sentences and not self.uses_forbidden(text)


def read_paragraph_last_words(task: str) -> dict[str, Any]:
    """The parameters of ``paragraph_last_words`` read from ``task`` (`ExtractionError` naming what is missing)."""
    cue = r"\bend(?:s|ing)?\s+(?:in|with|on)\b|\b(?:last|final|closing)\s+words\b"
    if not re.search(cue, task, re.I):
        raise ExtractionError("could not find how the sentences must end (e.g. \"end with 'a' and 'b'\")")
    quoted = [q.strip() for q in QUOTED.findall(task)]
    if not quoted:
        quoted = word_list(require(clause_after(task, r"\bend(?:s|ing)?\s+(?:in|with)(?:\s+the\s+words?)?\b"), "the last words"))
    return {"last_words": single_words(quoted, "the last words")}


class LastWords(ParagraphProgram):
    """A paragraph whose sentence i ends with the word ``last_words[i]`` (one sentence per word).

    Strategy: a note tells the proposal the word the current sentence must end with; prose
    tokens are written freely (no sentence end); at each word boundary after ``min_words`` words
    ``propose_text`` may place the final word now (with at least the proposal's own probability
    of starting it, and surely by ``max_words``), weighted against the prior; an end mark follows. A twist of ``-MISSING_WORD_COST`` per word still to place keeps
    particles that place it early from losing out to those that have not paid for it yet.
    Step granularity: one token or one forced word.
    End conditions: the end mark after the last required word, then EOS.
    """

    SPEC = ProgramSpec(
        name="paragraph_last_words",
        family=FAMILY,
        covers=frozenset({"last_words", "segment_count"}),
        extract=read_paragraph_last_words,
        description="Write a paragraph whose sentences end with given words, in order (one sentence per given last word).",
        params_schema={
            "type": "object",
            "properties": {
                "last_words": {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1, "maxItems": 8},
            },
            "required": ["last_words"],
            "additionalProperties": False,
        },
        examples=[
            ("Generate a paragraph with 2 sentences that end in 'mind' and 'soul' respectively.", {"last_words": ["mind", "soul"]}),
            ("Write three sentences; the first must end with 'light', the second with 'stone', the third with 'home'.", {"last_words": ["light", "stone", "home"]}),
            ("Write a short paragraph whose sentences end with the words 'rain' and 'again'.", {"last_words": ["rain", "again"]}),
            ("Compose a paragraph of 3 sentences whose final words are 'fire', 'ice' and 'water', in that order.", {"last_words": ["fire", "ice", "water"]}),
            ("Write a paragraph with two sentences; the first ends with 'dawn' and the second ends with 'dusk'.", {"last_words": ["dawn", "dusk"]}),
        ],
    )

    MISSING_WORD_COST = 8.0  # nats: a rough prior log-probability of forcing a word

    def __init__(self, lm: LanguageModel, task: str, *, last_words: list[str]):
        super().__init__(lm, task, n_sentences=len(last_words), min_words=5, max_words=18)
        self.last_words = [check_word(w, "each last word") for w in last_words]

    async def step(self):
        await self.write_next()
        if not self.finished:  # look-ahead: each last word still to place will cost about this much
            placed = sentence_state(self.text)[0] + self.fixed_last
            self.twist(-self.MISSING_WORD_COST * (self.n_sentences - placed))

    async def write_next(self) -> None:
        k, n = sentence_state(self.text)
        target = self.last_words[k]
        if not self.text or self.text.endswith(END_MARKS):
            self.note(f"sentence {k + 1} must end with the word '{target}'.")
        if self.fixed_last:
            self.fixed_last = False
            await self.next_token(self.tokens.ends)
            if self.all_written():
                await self.end()
            return
        if n >= self.min_words:
            if not await self.word_ends():
                await self.next_token(self.continuation())
                return
            if await self.propose_text([" " + target], at_least=1.0 / (self.max_words - n + 1)) is not None:
                self.fixed_last = True
                return
        await self.next_token(self.prose_mask(new_word=True, end=False))

    def check(self, text: str) -> bool:
        sents = sentences(text)
        return (
            is_paragraph(text)
            and len(sents) == self.n_sentences
            and all(words(s) and same_word(words(s)[-1], w) for s, w in zip(sents, self.last_words, strict=True))
        )
