"""Reading numbers, ordinals, bounds, quoted words and lists from tasks written in plain English.

Shared by the library programs' extraction rules (each `ProgramSpec` carries its own) and the
constraint vocabulary (`programs.vocabulary`). The helpers understand numbers in digits or words
("12", "twelve", "twenty-five"), ordinals ("3rd", "third", "last"), quoted or bare words ('soft',
"soft", soft), unquoted lists ("the terms a, b or c") and bounds ("between 10 and 15 words", "at
least 20", "no more than 7", "under 7 letters").
"""

from __future__ import annotations

import re
from typing import Any

UNITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
         "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90}
ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8,
            "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12, "thirteenth": 13, "fourteenth": 14,
            "fifteenth": 15, "sixteenth": 16, "seventeenth": 17, "eighteenth": 18, "nineteenth": 19, "twentieth": 20}
NUMBER_WORDS = {w: i for i, w in enumerate(UNITS)} | TENS | {"hundred": 100, "a dozen": 12, "dozen": 12}
NUM = r"(\d+|(?:twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety)(?:[\s-](?:one|two|three|four|five|six|seven|eight|nine))?|" + "|".join(sorted(NUMBER_WORDS, key=len, reverse=True)) + r")"
ORD = r"(\d+(?:st|nd|rd|th)|last|" + "|".join(ORDINALS) + r")"
QUOTED = re.compile(r"(?<![A-Za-z])['\"‘“]([^'\"‘’“”\n]+?)['\"’”](?![A-Za-z])")
MONEY = re.compile(r"\$\s?(\d+(?:\.\d{1,2})?)")
CLOCK = r"(\d{1,2})(?::(\d{2}))?\s*(am|pm|a\.m\.|p\.m\.)?"
AT_MOST = r"(?:at most|no more than|not more than|up to|a maximum of|maximum of|max(?:imum)?|within)"
AT_LEAST = r"(?:at least|no fewer than|no less than|not fewer than|a minimum of|minimum of|min(?:imum)?)"
BARE_WORD = r"[A-Za-z][\w'’-]*"
# a bare list of words that closes its sentence: "copper, orchard and violin." (look-ahead only);
# not what a count includes ("including spaces and punctuation")
BARE_LIST = rf"(?![^.;!?]*\b(?:spaces?|whitespaces?|punctuation|characters?|letters?|digits?|numbers?)\b)(?={BARE_WORD}(?:\s*,\s*{BARE_WORD})*\s*,?\s+and\s+{BARE_WORD}\s*(?:[.;!?]|$))"
BELOW = r"(?:fewer than|less than|under|below|shorter than)"


class ExtractionError(ValueError):
    """A parameter could not be read from the task; the message names it."""


def number(text: str) -> int:
    """The integer a numeral or number word stands for ("12", "twelve", "twenty-five")."""
    text = text.lower().strip()
    if text.isdigit():
        return int(text)
    if text in NUMBER_WORDS:
        return NUMBER_WORDS[text]
    tens, _, unit = re.split(r"([\s-])", text, maxsplit=1) if re.search(r"[\s-]", text) else (text, "", "")
    if tens in TENS and unit.strip() in NUMBER_WORDS:
        return TENS[tens] + NUMBER_WORDS[unit.strip()]
    raise ExtractionError(f"{text!r} is not a number")


def ordinal(text: str) -> int | None:
    """1-based position of an ordinal ("3rd", "third"); None for "last"."""
    text = text.lower()
    if text == "last":
        return None
    return int(text[:-2]) if text[:-2].isdigit() else ORDINALS[text]


def count_of(task: str, nouns: str) -> int | None:
    """The number written just before one of ``nouns`` ("exactly 12 words", "a 12-word")."""
    m = re.search(rf"\b{NUM}[\s-]+(?:{nouns})\b", task, re.I)
    return number(m.group(1)) if m else None


def exact_count_of(task: str, nouns: str) -> int | None:
    """Like `count_of`, but only a count that is not a bound ("12 words", not "at least 12 words")."""
    for m in re.finditer(rf"\b{NUM}[\s-]+(?:{nouns})\b", task, re.I):
        before = task[: m.start()].lower().rstrip()
        if not re.search(rf"(?:{AT_LEAST}|{AT_MOST}|{BELOW}|more than|longer than|between|and|to|-)$", before):
            return number(m.group(1))
    return None


def bounds_of(task: str, nouns: str) -> tuple[int | None, int | None]:
    """(minimum, maximum) of a quantity counted in ``nouns``; None where the task sets no bound."""
    low = high = None
    n = rf"{NUM}(?:[\s-]+(?:{nouns}))?"
    if m := re.search(rf"\bbetween\s+{n}\s+and\s+{NUM}[\s-]+(?:{nouns})\b", task, re.I):
        return number(m.group(1)), number(m.group(2))
    for m in re.finditer(rf"\b{NUM}\s*(?:to|-|–)\s*{NUM}[\s-]+(?:{nouns})\b", task, re.I):
        if number(m.group(1)) <= number(m.group(2)):  # not "twenty-one words"
            return number(m.group(1)), number(m.group(2))
    if m := re.search(rf"\b{AT_LEAST}\s+{NUM}(?:[\s-]+\w+)?[\s-]+(?:{nouns})\b", task, re.I):
        low = number(m.group(1))
    if m := re.search(rf"\b{AT_MOST}\s+{NUM}(?:[\s-]+\w+)?[\s-]+(?:{nouns})\b", task, re.I):
        high = number(m.group(1))
    elif m := re.search(rf"\b{BELOW}\s+{NUM}(?:[\s-]+\w+)?[\s-]+(?:{nouns})\b", task, re.I):
        high = number(m.group(1)) - 1
    if m := re.search(rf"\b{NUM}[\s-]+(?:{nouns})\s+or\s+(?:fewer|less)\b", task, re.I):
        high = number(m.group(1))
    if m := re.search(rf"\b{NUM}[\s-]+(?:{nouns})\s+or\s+more\b", task, re.I):
        low = number(m.group(1))
    if m := re.search(rf"\b{AT_LEAST}\s+{NUM}\b(?:(?!\.\s).)*?\b{AT_MOST}\s+{NUM}[\s-]+(?:{nouns})\b", task, re.I):
        low, high = number(m.group(1)), number(m.group(2))
    if m := re.search(rf"\b{AT_MOST}\s+{NUM}\b(?:(?!\.\s).)*?\b{AT_LEAST}\s+{NUM}\b", task, re.I):
        if re.search(rf"\b{AT_MOST}\s+{NUM}[\s-]+(?:{nouns})\b", task, re.I):
            high, low = number(m.group(1)), number(m.group(2))
    return low, high


def clause_after(task: str, pattern: str) -> str | None:
    """The text after ``pattern`` up to the end of its sentence (None if ``pattern`` is absent)."""
    m = re.search(pattern, task, re.I)
    if not m:
        return None
    rest = task[m.end():]
    end = re.search(r"[.;!?](?:\s|$)(?![^'\"’”]*['\"’”])", rest)
    return rest[: end.start()] if end else rest


def word_list(clause: str) -> list[str]:
    """Quoted words in ``clause``, else its comma/and/or-separated bare words."""
    quoted = [q.strip() for q in QUOTED.findall(clause)]
    if quoted:
        return quoted
    items = re.split(r",|\band\b|\bor\b|\bnor\b", re.sub(r"^\s*(?:the\s+)?(?:words?|terms?)\s*:?", "", clause, flags=re.I))
    return [w.strip(" :'\"") for w in items if w.strip(" :'\"")]


def single_words(words: list[str], what: str) -> list[str]:
    if not words or any(len(w.split()) != 1 for w in words):
        raise ExtractionError(f"could not read {what} (found {words!r})")
    return words


def require(value: Any, what: str) -> Any:
    if value is None:
        raise ExtractionError(f"could not find {what} in the task")
    return value


def word_limits(low: int | None, high: int | None) -> dict[str, int]:
    """``min_words`` / ``max_words`` for the bounds that are known."""
    return {k: v for k, v in (("min_words", low), ("max_words", high)) if v is not None}
