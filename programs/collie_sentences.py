"""COLLIE-style sentence programs: one sentence under a word- or character-level constraint.

Each program writes prose tokens (`ProseTokens`) one at a time, so it always knows how many words
the sentence has and whether the current word is complete; masks make every violation impossible,
and ``check`` verifies the finished sentence from scratch (`programs.text` defines words).
"""

from __future__ import annotations

import re
from typing import Any

from selfsteer.smc import LanguageModel

from .base import LibraryProgram
from .phrasing import (
    BARE_LIST,
    NUM,
    ORD,
    ExtractionError,
    bounds_of,
    clause_after,
    count_of,
    exact_count_of,
    number,
    ordinal,
    require,
    single_words,
    word_limits,
    word_list,
)
from .registry import ProgramSpec
from .text import PUNCTUATION, count_words, is_one_sentence, same_word, words
from .tokens import END_MARKS, LETTERS_DIGITS, PROSE_CHARS

FAMILY = "collie_sentences"


def check_word(word: str, what: str) -> str:
    """A single word written with prose characters, else ValueError."""
    word = word.strip()
    if not word or any(c.isspace() for c in word) or not all(c in PROSE_CHARS for c in word):
        raise ValueError(f"{what} must be one word of letters, digits, hyphens or apostrophes, got {word!r}")
    return word


def current_word(text: str) -> str:
    """The word being written at the end of ``text`` ("" after whitespace or punctuation)."""
    if not text or text[-1] not in LETTERS_DIGITS:
        return ""
    return text.split()[-1].strip(PUNCTUATION)


def read_sentence_word_count(task: str) -> dict[str, Any]:
    """The parameters of ``sentence_word_count`` read from ``task`` (`ExtractionError` naming what is missing)."""
    return {"n_words": require(exact_count_of(task, "words?"), "an exact number of words")}


class ExactWordCount(LibraryProgram):
    """A sentence of exactly ``n_words`` words.

    Strategy: write prose tokens; a new word may start only while fewer than ``n_words`` words
    exist; every word is completed in the step that starts it (``complete_word``), and the step
    that completes word ``n_words`` also writes ".", "!" or "?", so resampling weighs the last
    word together with the end it must allow.
    Step granularity: one word (with its end mark for the last one).
    End conditions: a sentence-end mark after word ``n_words``, then EOS (scored by the prior).
    """

    SPEC = ProgramSpec(
        name="sentence_word_count",
        family=FAMILY,
        covers=frozenset({"word_count"}),
        extract=read_sentence_word_count,
        description="Write one sentence with exactly N words (a word count constraint on a single sentence).",
        params_schema={
            "type": "object",
            "properties": {"n_words": {"type": "integer", "minimum": 1, "maximum": 60}},
            "required": ["n_words"],
            "additionalProperties": False,
        },
        examples=[
            ("Write a sentence with exactly 12 words.", {"n_words": 12}),
            ("Generate a sentence about the ocean that has exactly eight words.", {"n_words": 8}),
            ("Please write a single sentence containing 15 words, no more and no less.", {"n_words": 15}),
            ("Generate a 10-word sentence about a busy train station.", {"n_words": 10}),
            ("Make a sentence about friendship made of exactly twenty words.", {"n_words": 20}),
        ],
    )

    def __init__(self, lm: LanguageModel, task: str, *, n_words: int):
        super().__init__(lm, task, max_tokens=4 * n_words + 8)
        self.n_words = n_words

    async def step(self):
        n = count_words(self.text)
        tok = await self.prose_token(new_word=n < self.n_words, end=n == self.n_words)
        if tok.text not in END_MARKS:
            await self.complete_word()
            if self.finished or count_words(self.text) < self.n_words:
                return
            await self.next_token(self.tokens.ends)
        if not self.finished:
            await self.end()

    def check(self, text: str) -> bool:
        return is_one_sentence(text) and count_words(text) == self.n_words


def read_sentence_words_at_positions(task: str) -> dict[str, Any]:
    """The parameters of ``sentence_words_at_positions`` read from ``task`` (`ExtractionError` naming what is missing)."""
    n_words = count_of(task, "words?")
    pairs = re.findall(rf"\b{ORD}\s+word\s+(?:is|should be|must be|will be|be|=|:)?\s*['\"‘“]([^'\"‘’“”]+)['\"’”]", task, re.I)
    pairs = pairs or re.findall(rf"\b{ORD}\s+word\s+(?:is|should be|must be|will be)\s+([A-Za-z][\w'-]*)", task, re.I)
    pairs += [(o, w) for w, o in re.findall(rf"['\"‘“]([^'\"‘’“”]+)['\"’”]\s+(?:is\s+|as\s+)?the\s+{ORD}\s+word\b", task, re.I)]
    words_at: dict[str, str] = {}
    for o, w in pairs:
        pos = ordinal(o)
        if pos is None:
            pos = require(n_words, "the number of words (needed to place the last word)")
        words_at[str(pos)] = w.strip()
    if not words_at:
        raise ExtractionError("could not find any 'Nth word is X' in the task")
    return {"words_at": words_at} | ({"n_words": n_words} if n_words else {})


class WordsAtPositions(LibraryProgram):
    """A sentence with given words at given (1-based) positions, optionally of exactly ``n_words``.

    Strategy: write prose tokens, completing each word in the step that starts it
    (``complete_word``), so every step ends at a word boundary; when the next word's position is
    fixed, force the given word (scored by the prior) and forbid continuing it. The step that
    completes the last allowed word also writes ".", "!" or "?". Without ``n_words`` the sentence
    may end after the last fixed position.
    Step granularity: one word (with its end mark for the last one).
    End conditions: a sentence-end mark once the length is right, then EOS.
    """

    SPEC = ProgramSpec(
        name="sentence_words_at_positions",
        family=FAMILY,
        covers=frozenset({"words_at", "word_count"}),
        extract=read_sentence_words_at_positions,
        description=(
            "Write one sentence where given words appear at given word positions "
            "(for example the 3rd word is 'soft'), optionally with an exact number of words."
        ),
        params_schema={
            "type": "object",
            "properties": {
                "words_at": {
                    "type": "object",
                    "patternProperties": {"^[1-9][0-9]*$": {"type": "string", "minLength": 1}},
                    "additionalProperties": False,
                    "minProperties": 1,
                    "description": "1-based word position (as a string key) -> the word there",
                },
                "n_words": {"type": "integer", "minimum": 1, "maximum": 60},
            },
            "required": ["words_at"],
            "additionalProperties": False,
        },
        examples=[
            (
                "Generate a sentence with 10 words, where the 3rd word is 'soft', the 7th word is 'to' and the 10th word is 'bed'.",
                {"words_at": {"3": "soft", "7": "to", "10": "bed"}, "n_words": 10},
            ),
            ("Write a sentence whose first word is 'Yesterday' and whose fifth word is 'river'.", {"words_at": {"1": "Yesterday", "5": "river"}}),
            ("Write a sentence in which the second word is 'old' and the sixth word is 'sea'.", {"words_at": {"2": "old", "6": "sea"}}),
            ("Create a sentence of 9 words in which the 4th word is 'blue' and the last word is 'sky'.", {"words_at": {"4": "blue", "9": "sky"}, "n_words": 9}),
            ("Produce a sentence where the third word must be 'under'.", {"words_at": {"3": "under"}}),
        ],
    )

    def __init__(self, lm: LanguageModel, task: str, *, words_at: dict[str, str], n_words: int | None = None):
        self.words_at = {int(k): check_word(w, f"the word at position {k}") for k, w in words_at.items()}
        last_fixed = max(self.words_at)
        if n_words is not None and last_fixed > n_words:
            raise ValueError(f"position {last_fixed} lies beyond the sentence's {n_words} words")
        self.n_words = n_words
        self.min_words = n_words or last_fixed
        self.max_words = n_words or last_fixed + 12
        super().__init__(lm, task, max_tokens=4 * self.max_words + 8)

    async def step(self):
        n = count_words(self.text)
        forced = self.words_at.get(n + 1)
        if forced is not None and n < self.max_words:
            await self.extend_with(forced[0].upper() + forced[1:] if n == 0 else " " + forced)
        else:
            tok = await self.prose_token(new_word=n < self.max_words, end=n >= self.min_words, cont=False)
            if tok.text in END_MARKS:
                await self.end()
                return
            await self.complete_word()
        if not self.finished and count_words(self.text) == self.max_words:
            await self.next_token(self.tokens.ends)
            if not self.finished:
                await self.end()

    def check(self, text: str) -> bool:
        ws = words(text)
        if not is_one_sentence(text) or (self.n_words is not None and len(ws) != self.n_words):
            return False
        return all(p <= len(ws) and same_word(ws[p - 1], w) for p, w in self.words_at.items())


def read_sentence_max_word_length(task: str) -> dict[str, Any]:
    """The parameters of ``sentence_max_word_length`` read from ``task`` (`ExtractionError` naming what is missing)."""
    _, longest = bounds_of(task, "characters?|letters?|chars?")
    if longest is None and (m := re.search(rf"\b(?:longer|more)\s+than\s+{NUM}\s+(?:characters?|letters?)", task, re.I)):
        longest = number(m.group(1))
    params: dict[str, Any] = {"max_word_chars": require(longest, "the maximum word length")}
    return params | word_limits(*bounds_of(task, "words?"))


class MaxWordLength(LibraryProgram):
    """A sentence of at least ``min_words`` words, none longer than ``max_word_chars`` characters.

    Strategy: write prose tokens, each restricted so that the word it starts or continues stays
    within ``max_word_chars`` characters (punctuation around a word does not count), and complete
    the word in the same step (``word_goes_on`` over the continuations that fit: a word the
    prior wanted longer ends, charged by a twist, instead of being cut to a non-word); the
    sentence may end once it has ``min_words`` words and must end by ``max_words``.
    Step granularity: one word.
    End conditions: a sentence-end mark after at least ``min_words`` words, then EOS.
    """

    SPEC = ProgramSpec(
        name="sentence_max_word_length",
        family=FAMILY,
        covers=frozenset({"max_word_length", "word_count"}),
        extract=read_sentence_max_word_length,
        description=(
            "Write one sentence in which every word is short: no word longer than a maximum number "
            "of letters, with at least a minimum number of words."
        ),
        params_schema={
            "type": "object",
            "properties": {
                "max_word_chars": {"type": "integer", "minimum": 2, "maximum": 30},
                "min_words": {"type": "integer", "minimum": 1, "maximum": 60, "default": 5},
                "max_words": {"type": "integer", "minimum": 1, "maximum": 80},
            },
            "required": ["max_word_chars"],
            "additionalProperties": False,
        },
        examples=[
            (
                "Generate a sentence with at least 20 words, and each word less than six characters.",
                {"max_word_chars": 5, "min_words": 20},
            ),
            ("Write a sentence of at least 10 words where no word has more than 4 letters.", {"max_word_chars": 4, "min_words": 10}),
            ("Write a sentence using only words of at most five characters.", {"max_word_chars": 5}),
            ("Write a sentence of at least 12 words in which no word is longer than 3 letters.", {"max_word_chars": 3, "min_words": 12}),
            ("Generate a sentence where every word has fewer than 6 letters.", {"max_word_chars": 5}),
        ],
    )

    def __init__(self, lm: LanguageModel, task: str, *, max_word_chars: int, min_words: int = 5, max_words: int | None = None):
        self.max_word_chars = max_word_chars
        self.min_words = min_words
        self.max_words = max_words if max_words is not None else min_words + 12
        if self.max_words < min_words:
            raise ValueError(f"max_words ({self.max_words}) is below min_words ({min_words})")
        super().__init__(lm, task, max_tokens=4 * self.max_words + 8)

    async def step(self):
        t = self.tokens
        n = count_words(self.text)
        room = self.max_word_chars - len(current_word(self.text))
        start = t.opening if not self.text else t.word_start  # (opening tokens also continue words)
        fits = (start & t.word_length(self.max_word_chars)) | (self.continuation() & t.word_length(room))
        tok = await self.prose_token(
            new_word=n < self.max_words, end=n >= self.min_words, cont=room > 0, extra=fits | t.comma | t.ends
        )
        if tok.text in END_MARKS:
            await self.end()
            return
        while not self.finished and self.text[-1:] in LETTERS_DIGITS:  # the rest of the word, in this step
            fits = self.continuation() & t.word_length(max(self.max_word_chars - len(current_word(self.text)), 0))
            if not len(fits) or not await self.word_goes_on(fits):
                return
            await self.next_token(fits)

    def check(self, text: str) -> bool:
        ws = words(text)
        return is_one_sentence(text) and len(ws) >= self.min_words and all(len(w) <= self.max_word_chars for w in ws)


NEGATION = re.compile(r"\b(?:not|never|no|without|avoid\w*|don't|doesn't|forbid\w*|ban\w*)\b[^.;]{0,12}$", re.I)


def read_sentence_including_words(task: str) -> dict[str, Any]:
    """The parameters of ``sentence_including_words`` read from ``task`` (`ExtractionError` naming what is missing)."""
    trigger = (
        r"\b(?:includ\w*|contain\w*|uses?|using|with)\s+(?:the\s+)?(?:following\s+)?(?:words?|terms?)\b|\bwords?\s+(?:are\s+)?included\b"
        rf"|\b(?:includ\w*|contain\w*|mention\w*|featur\w*)\s+{BARE_LIST}"
    )
    m = re.search(trigger, task, re.I)
    if m is None:
        raise ExtractionError("could not find the words to include (e.g. \"uses the words 'a' and 'b'\")")
    if NEGATION.search(task[: m.start()]):
        raise ExtractionError("the task forbids words rather than requiring them")
    clause = clause_after(task[m.start():], trigger) or ""
    return {"words": single_words(word_list(clause), "the words to include")}


class IncludeWords(LibraryProgram):
    """A sentence that includes every one of the given words.

    Strategy: write prose tokens, completing each word in the step that starts it
    (``complete_word``), so every step ends at a word boundary; there, while required words are
    missing, ``propose_text`` may force one of them (with at least the proposal's own probability of
    starting it, and surely once the remaining slots run out), weighted against the prior so
    that resampling keeps particles where the word fits; a twist of
    ``-MISSING_WORD_COST`` per missing word keeps particles that insert early from losing out to
    those that have not paid for their words yet.
    Step granularity: one word (generated or forced).
    End conditions: a sentence-end mark once all words are present (at least ``min_words``), then EOS.
    """

    SPEC = ProgramSpec(
        name="sentence_including_words",
        family=FAMILY,
        covers=frozenset({"required_words"}),
        extract=read_sentence_including_words,
        description="Write one sentence that must include (use) all of a given list of words.",
        params_schema={
            "type": "object",
            "properties": {
                "words": {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1, "maxItems": 8},
                "max_words": {"type": "integer", "minimum": 2, "maximum": 60, "default": 20},
            },
            "required": ["words"],
            "additionalProperties": False,
        },
        examples=[
            (
                "Generate a sentence but make sure the following words are included: 'soft', 'beach', 'mango'.",
                {"words": ["soft", "beach", "mango"]},
            ),
            ("Write a sentence that uses the words 'river', 'lantern' and 'quiet'.", {"words": ["river", "lantern", "quiet"]}),
            ("Compose one sentence containing the words 'clock' and 'garden'.", {"words": ["clock", "garden"]}),
            ("Make a sentence that includes the words 'candle', 'storm' and 'bread'.", {"words": ["candle", "storm", "bread"]}),
            ("Write one sentence about travel that must contain the word 'passport'.", {"words": ["passport"]}),
        ],
    )

    MISSING_WORD_COST = 8.0  # nats: a rough prior log-probability of forcing a word

    def __init__(self, lm: LanguageModel, task: str, *, words: list[str], max_words: int = 20):
        self.required = [check_word(w, "each required word") for w in words]
        self.min_words = 4
        self.max_words = max(max_words, len(self.required) + 2)
        super().__init__(lm, task, max_tokens=4 * self.max_words + 8)

    def missing(self) -> list[str]:
        present = words(self.text)
        return [w for w in self.required if not any(same_word(w, p) for p in present)]

    async def step(self):
        await self.write_next()
        if not self.finished:  # look-ahead: each missing word will still cost about this much
            self.twist(-self.MISSING_WORD_COST * len(self.missing()))

    async def write_next(self) -> None:
        n = count_words(self.text)
        missing = self.missing()
        if missing and n < self.max_words:
            texts = [w[0].upper() + w[1:] if n == 0 else " " + w for w in missing]
            at_least = min(1.0, len(missing) / (self.max_words - n)) / len(missing)
            if await self.propose_text(texts, at_least=at_least) is not None:
                return
        end = not missing and n >= self.min_words
        tok = await self.prose_token(new_word=n < self.max_words, end=end, cont=False)
        if tok.text in END_MARKS:
            await self.end()
        else:
            await self.complete_word()

    def check(self, text: str) -> bool:
        present = words(text)
        return is_one_sentence(text) and all(any(same_word(w, p) for p in present) for w in self.required)


def read_sentence_char_count(task: str) -> dict[str, Any]:
    """The parameters of ``sentence_char_count`` read from ``task`` (`ExtractionError` naming what is missing)."""
    return {"n_chars": require(exact_count_of(task, "characters?|chars?"), "an exact number of characters")}


class ExactCharCount(LibraryProgram):
    """A sentence of exactly ``n_chars`` characters, spaces and punctuation included.

    Strategy: write prose tokens, each no longer than the characters left minus one (kept for
    the final "."); when exactly one character is left, the sentence must end. A note tells the
    proposal when few characters remain.
    Step granularity: one token.
    End conditions: the end mark at character ``n_chars``, then EOS.
    """

    SPEC = ProgramSpec(
        name="sentence_char_count",
        family=FAMILY,
        covers=frozenset({"char_count"}),
        extract=read_sentence_char_count,
        description="Write one sentence with an exact number of characters (letters, spaces and punctuation all count).",
        params_schema={
            "type": "object",
            "properties": {"n_chars": {"type": "integer", "minimum": 10, "maximum": 300}},
            "required": ["n_chars"],
            "additionalProperties": False,
        },
        examples=[
            ("Please generate a sentence with exactly 82 characters. Include whitespace into your character count.", {"n_chars": 82}),
            ("Write a sentence that is exactly 40 characters long, counting spaces and punctuation.", {"n_chars": 40}),
            ("Produce a single sentence of precisely 60 characters.", {"n_chars": 60}),
            ("Generate a sentence about dogs with exactly 45 characters including spaces.", {"n_chars": 45}),
            ("I need a sentence that is precisely 70 characters long.", {"n_chars": 70}),
        ],
    )

    NOTE_AT = 25  # characters left when the proposal is told to wrap up

    def __init__(self, lm: LanguageModel, task: str, *, n_chars: int):
        super().__init__(lm, task, max_tokens=n_chars + 8)
        self.n_chars = n_chars

    async def step(self):
        t = self.tokens
        left = self.n_chars - len(self.text)
        if left <= self.NOTE_AT and not self.hints:
            self.note(f"only {left} characters are left; finish the sentence soon.")
        if left == 1:
            mask = t.ends
        else:
            mask = self.prose_mask(new_word=True, end=False) & t.char_length(left - 1)
            if left < 4:
                mask = mask & ~t.comma
        tok = await self.next_token(mask)
        if tok.text in END_MARKS:
            await self.end()

    def check(self, text: str) -> bool:
        return is_one_sentence(text) and len(text.strip()) == self.n_chars


def read_sentence_without_letter(task: str) -> dict[str, Any]:
    """The parameters of ``sentence_without_letter`` read from ``task`` (`ExtractionError` naming what is missing)."""
    m = re.search(r"\bletters?\s+['\"‘“]?([A-Za-z])['\"’”]?(?![A-Za-z])", task, re.I)
    params: dict[str, Any] = {"letter": require(m, "the banned letter").group(1).lower()}
    return params | word_limits(*bounds_of(task, "words?"))


class BannedLetter(LibraryProgram):
    """A sentence that never uses the letter ``letter`` (either case).

    Strategy: write prose tokens restricted to those without the letter, completing each word in
    the step that starts it (a word whose continuations all hold the letter simply ends); the
    sentence may end after ``min_words`` words and must end by ``max_words``.
    Step granularity: one word.
    End conditions: a sentence-end mark after at least ``min_words`` words, then EOS.
    """

    SPEC = ProgramSpec(
        name="sentence_without_letter",
        family=FAMILY,
        covers=frozenset({"banned_letters", "word_count"}),
        extract=read_sentence_without_letter,
        description="Write one sentence that does not contain a given letter anywhere (a lipogram, a banned letter).",
        params_schema={
            "type": "object",
            "properties": {
                "letter": {"type": "string", "pattern": "^[A-Za-z]$"},
                "min_words": {"type": "integer", "minimum": 1, "maximum": 60, "default": 6},
                "max_words": {"type": "integer", "minimum": 1, "maximum": 80},
            },
            "required": ["letter"],
            "additionalProperties": False,
        },
        examples=[
            ("Write a sentence that does not use the letter 'e'.", {"letter": "e"}),
            ("Generate a sentence about summer without using the letter a.", {"letter": "a"}),
            ("Write a sentence of at least 8 words in which the letter 'o' never appears.", {"letter": "o", "min_words": 8}),
            ("Compose a sentence in which the letter 'i' never appears.", {"letter": "i"}),
            ("Give me a sentence about the city that avoids the letter s entirely.", {"letter": "s"}),
        ],
    )

    def __init__(self, lm: LanguageModel, task: str, *, letter: str, min_words: int = 6, max_words: int | None = None):
        if len(letter) != 1 or not letter.isalpha():
            raise ValueError(f"letter must be a single letter, got {letter!r}")
        self.letter = letter.lower()
        self.min_words = min_words
        self.max_words = max_words if max_words is not None else min_words + 12
        super().__init__(lm, task, max_tokens=4 * self.max_words + 8)

    async def step(self):
        n = count_words(self.text)
        extra = self.tokens.without_letters(self.letter)
        tok = await self.prose_token(new_word=n < self.max_words, end=n >= self.min_words, extra=extra)
        if tok.text not in END_MARKS:
            await self.complete_word(allowed=extra)
            if self.finished or count_words(self.text) < self.max_words:
                return
            await self.next_token(self.tokens.ends)
        if not self.finished:
            await self.end()

    def check(self, text: str) -> bool:
        return is_one_sentence(text) and self.letter not in text.lower() and count_words(text) >= self.min_words

