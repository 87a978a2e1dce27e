"""Token classes for writing plain prose one token at a time.

`ProseTokens.of(lm)` sorts the vocabulary into the classes the library programs build masks from.
Prose tokens use ASCII letters and digits, apostrophes, hyphens and commas only, so a program that
allows nothing else knows exactly where words and sentences begin and end:

- ``opening``: starts a text or a line: a letter first, no whitespace ("The", "Once").
- ``word_start``: one space then a letter or digit (" cat", " Paris,"): starts a new word.
- ``capital_start``: a ``word_start`` whose first letter is upper case (starts a sentence).
- ``word_cont``: no whitespace, lower-case letters, an apostrophe may lead ("s", "'t", "ing,"):
  continues a word of letters; ``word_cont_plain``: those without an apostrophe;
  ``digit_cont``: digits ("5", "00,"): continues a number.

Only a word's first letter may be upper case (no "THOUSANDS", no "tHIS"), and a word is letters
or digits, not both ("c1n").
- ``comma``: exactly ",".
- ``ends``: exactly ".", "!" or "?".
- ``newline``: exactly "\\n".
- ``digit(d)``: exactly the digit ``d``.
- ``none``: no token (the empty mask, to combine with ``|``).

No class except ``ends`` contains ``.!?``, and no class holds newlines or special tokens; a token
never ends with a hyphen or an apostrophe, so every word is complete at every token boundary.
"""

from __future__ import annotations

import string
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from selfsteer.smc import LanguageModel, TokenMask

LETTERS_DIGITS = frozenset(string.ascii_letters + string.digits)
PROSE_CHARS = LETTERS_DIGITS | frozenset("'’-,")
END_MARKS = (".", "!", "?")


def _prose_body(t: str) -> bool:
    """Visible prose characters only, ending in a letter, digit or comma."""
    return bool(t) and all(c in PROSE_CHARS for c in t) and (t[-1] in LETTERS_DIGITS or t[-1] == ",")


def _plain_case(t: str) -> bool:
    """At most the first letter is upper case (no SHOUTING, no mIxEd case)."""
    return not any(c.isupper() for c in t.lstrip()[1:])


def _one_kind(t: str) -> bool:
    """Letters or digits, not both ("c1n" is not a word)."""
    return not (any(c.isdigit() for c in t) and any(c.isalpha() for c in t))


def is_opening(t: str) -> bool:
    return _prose_body(t) and t[0] in string.ascii_letters and _plain_case(t) and _one_kind(t)


def is_word_start(t: str) -> bool:
    return len(t) > 1 and t[0] == " " and t[1] in LETTERS_DIGITS and _prose_body(t[1:]) and _plain_case(t) and _one_kind(t)


def is_word_cont(t: str) -> bool:
    """Continues a word of letters: lower-case letters (an apostrophe may lead), maybe a comma."""
    return (
        _prose_body(t)
        and (t[0] in string.ascii_lowercase or t[0] in "'’")
        and any(c.isalpha() for c in t)
        and not any(c.isupper() or c.isdigit() for c in t)
    )


def is_digit_cont(t: str) -> bool:
    """Continues a number: digits, maybe a comma."""
    return bool(t.rstrip(",")) and t.rstrip(",").isdigit() and t.isascii()


def continues_word(t: str) -> bool:
    """A token that extends the word before it (no leading space, not punctuation)."""
    return bool(t) and (t[0] in LETTERS_DIGITS or t[0] in "'’")


def word_chars(t: str) -> int:
    """Characters a token adds to the current word's length (a trailing comma does not count)."""
    return len(t.strip().rstrip(","))


@dataclass(frozen=True)
class ProseTokens:
    """The prose token classes of one LM's vocabulary (see the module docstring)."""

    lm: LanguageModel
    opening: TokenMask
    word_start: TokenMask
    capital_start: TokenMask
    word_cont: TokenMask
    word_cont_plain: TokenMask
    digit_cont: TokenMask
    comma: TokenMask
    ends: TokenMask
    newline: TokenMask
    none: TokenMask

    @classmethod
    def of(cls, lm: LanguageModel) -> ProseTokens:
        m = lm.masks
        return cls(
            lm=lm,
            opening=m.where("prose.opening", is_opening),
            word_start=m.where("prose.word_start", is_word_start),
            capital_start=m.where("prose.capital_start", lambda t: is_word_start(t) and t[1].isupper()),
            word_cont=m.where("prose.word_cont", is_word_cont),
            word_cont_plain=m.where("prose.word_cont_plain", lambda t: is_word_cont(t) and "'" not in t and "’" not in t),
            digit_cont=m.where("prose.digit_cont", is_digit_cont),
            comma=m.where("prose.comma", lambda t: t == ","),
            ends=m.where("prose.ends", lambda t: t in END_MARKS),
            newline=m.where("prose.newline", lambda t: t == "\n"),
            none=TokenMask("none", np.zeros(lm.vocab.size, dtype=bool)),
        )

    def __deepcopy__(self, memo):
        return self

    # ----- masks that depend on a parameter (each computed once per value) --------------------
    def digit(self, digits: Iterable[int | str]) -> TokenMask:
        """Tokens that are exactly one of the given digits."""
        key = "".join(sorted({str(d) for d in digits}))
        return self.lm.masks.where(f"prose.digits({key})", lambda t: len(t) == 1 and t in key)

    def exactly(self, *texts: str) -> TokenMask:
        """Tokens whose text is exactly one of ``texts``."""
        key = tuple(sorted(set(texts)))
        return self.lm.masks.where(f"prose.exactly{key!r}", lambda t: t in key)

    def word_length(self, max_chars: int) -> TokenMask:
        """Tokens adding at most ``max_chars`` characters to a word (leading space and comma free)."""
        return self.lm.masks.where(f"prose.word_chars<={max_chars}", lambda t: word_chars(t) <= max_chars)

    def char_length(self, max_chars: int) -> TokenMask:
        """Tokens of at most ``max_chars`` characters."""
        return self.lm.masks.length(1, max_chars)

    def without_letters(self, letters: str) -> TokenMask:
        """Tokens containing none of ``letters`` in either case."""
        return self.lm.masks.without(letters, case_sensitive=False)

    def not_words(self, banned: Iterable[str]) -> TokenMask:
        """Tokens that are not, by themselves, one of the ``banned`` words (any case, with or
        without a leading space or trailing comma)."""
        key = tuple(sorted({w.lower() for w in banned}))
        return self.lm.masks.where(f"prose.not_words{key!r}", lambda t: t.strip().rstrip(",").lower() not in key)

    def first_token(self, text: str) -> TokenMask:
        """The mask holding only the first token of ``text``'s encoding."""
        first = self.lm.encode(text)[0]
        arr = np.zeros(self.lm.vocab.size, dtype=bool)
        arr[first] = True
        return TokenMask(f"first_token({text!r})", arr)
