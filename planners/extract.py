"""Rules that read a library program's parameters from a task written in plain English.

`extract_params(name, task)` applies the rules of library program ``name`` and returns its
parameters, or raises `ExtractionError` naming what it could not find. The rules understand
numbers in digits or words ("12", "twelve", "twenty-five"), ordinals ("3rd", "third", "last"),
quoted words ('soft', "soft"), unquoted lists ("the terms a, b or c"), bounds ("between 10 and 15
words", "at least 20", "fewer than 7 letters"), money ("$18.00", "less than $18") and clock
times ("9:00", "4 PM"); a JSON schema written into the task, and a regular expression in
`backticks`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from selfsteer.programs.phrasing import (  # noqa: F401  (re-exported for callers of this module)
    AT_LEAST,
    AT_MOST,
    BELOW,
    CLOCK,
    MONEY,
    NUM,
    NUMBER_WORDS,
    ORD,
    ORDINALS,
    QUOTED,
    TENS,
    UNITS,
    ExtractionError,
    bounds_of,
    clause_after,
    count_of,
    exact_count_of,
    number,
    ordinal,
    require,
    single_words,
    word_list,
)


# ----- one rule per library program ------------------------------------------------------------
def sentence_word_count(task: str) -> dict[str, Any]:
    return {"n_words": require(exact_count_of(task, "words?"), "an exact number of words")}


def sentence_words_at_positions(task: str) -> dict[str, Any]:
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


def sentence_max_word_length(task: str) -> dict[str, Any]:
    _, longest = bounds_of(task, "characters?|letters?|chars?")
    if longest is None and (m := re.search(rf"\b(?:longer|more)\s+than\s+{NUM}\s+(?:characters?|letters?)", task, re.I)):
        longest = number(m.group(1))
    params: dict[str, Any] = {"max_word_chars": require(longest, "the maximum word length")}
    return params | word_limits(*bounds_of(task, "words?"))


NEGATION = re.compile(r"\b(?:not|never|no|without|avoid\w*|don't|doesn't|forbid\w*|ban\w*)\b[^.;]{0,12}$", re.I)


def sentence_including_words(task: str) -> dict[str, Any]:
    trigger = r"\b(?:includ\w*|contain\w*|uses?|using|with)\s+(?:the\s+)?(?:following\s+)?(?:words?|terms?)\b|\bwords?\s+(?:are\s+)?included\b"
    m = re.search(trigger, task, re.I)
    if m is None:
        raise ExtractionError("could not find the words to include (e.g. \"uses the words 'a' and 'b'\")")
    if NEGATION.search(task[: m.start()]):
        raise ExtractionError("the task forbids words rather than requiring them")
    clause = clause_after(task[m.start():], trigger) or ""
    return {"words": single_words(word_list(clause), "the words to include")}


def sentence_char_count(task: str) -> dict[str, Any]:
    return {"n_chars": require(exact_count_of(task, "characters?|chars?"), "an exact number of characters")}


def word_limits(low: int | None, high: int | None) -> dict[str, int]:
    """``min_words`` / ``max_words`` for the bounds that are known."""
    return {k: v for k, v in (("min_words", low), ("max_words", high)) if v is not None}


def sentence_without_letter(task: str) -> dict[str, Any]:
    m = re.search(r"\bletters?\s+['\"‘“]?([A-Za-z])['\"’”]?(?![A-Za-z])", task, re.I)
    params: dict[str, Any] = {"letter": require(m, "the banned letter").group(1).lower()}
    return params | word_limits(*bounds_of(task, "words?"))


def paragraph_sentence_count(task: str) -> dict[str, Any]:
    low, high = bounds_of(task, "sentences?")
    n = count_of(task, "sentences?") or low or high
    params: dict[str, Any] = {"n_sentences": require(n, "the number of sentences")}
    per = clause_after(task, r"\beach\b|\bevery\b")
    if per:
        low, high = bounds_of(per, "words?")
        exact = count_of(per, "words?") if low is None and high is None else None
        params |= word_limits(*((exact, exact) if exact else (low, high)))
    return params


def optional_sentences(task: str) -> dict[str, Any]:
    low, high = bounds_of(task, "sentences?")
    n = count_of(task, "sentences?") or low or high
    return {"n_sentences": n} if n else {}


def paragraph_sentence_starts(task: str) -> dict[str, Any]:
    clause = clause_after(task, r"\b(?:begins?|starts?|opens?)\s+with(?:\s+the\s+word)?\b|\bbeginning\s+with(?:\s+the\s+word)?\b")
    words = single_words(word_list(require(clause, "the word every sentence starts with"))[:1], "the first word")
    return {"start_word": words[0]} | optional_sentences(task)


def paragraph_forbidden_words(task: str) -> dict[str, Any]:
    clause = clause_after(task, r"\b(?:do not|don't|never|not)\s+(?:use|uses|using|include)\b|\bwithout(?:\s+using)?\b|\bavoid(?:s|ing)?\b|\bforbidden\b|\bbanned\b")
    words = single_words(word_list(require(clause, "the forbidden words")), "the forbidden words")
    return {"forbidden": words} | optional_sentences(task)


def paragraph_last_words(task: str) -> dict[str, Any]:
    cue = r"\bend(?:s|ing)?\s+(?:in|with|on)\b|\b(?:last|final|closing)\s+words\b"
    if not re.search(cue, task, re.I):
        raise ExtractionError("could not find how the sentences must end (e.g. \"end with 'a' and 'b'\")")
    quoted = [q.strip() for q in QUOTED.findall(task)]
    if not quoted:
        quoted = word_list(require(clause_after(task, r"\bend(?:s|ing)?\s+(?:in|with)(?:\s+the\s+words?)?\b"), "the last words"))
    return {"last_words": single_words(quoted, "the last words")}


def square_poem(task: str) -> dict[str, Any]:
    if not re.search(r"\blines?\b", task, re.I):
        raise ExtractionError("a square poem needs a number of lines")
    n_lines, n_words = count_of(task, "lines?"), count_of(task, "words?")
    if n_lines and n_words and n_lines != n_words:
        raise ExtractionError(f"{n_lines} lines of {n_words} words is not a square poem")
    return {"n": require(n_lines or n_words, "the number of lines")}


def ingredient_list_budget(task: str) -> dict[str, Any]:
    low, high = bounds_of(task, "ingredients?|items?|things?|products?")
    max_items = high or count_of(task, "ingredients?|items?")
    m = re.search(rf"(\b{BELOW}\s+)?\$\s?(\d+(?:\.\d{{1,2}})?)", task, re.I)
    budget = float(require(m, "the budget (a $ amount)").group(2))
    if m.group(1):  # "less than $18": strictly below
        budget = round(budget - 0.01, 2)
    params: dict[str, Any] = {"max_items": require(max_items, "the maximum number of ingredients"), "budget": budget}
    if low is not None:
        params["min_items"] = low
    return params


def clock_hour(hours: str, minutes: str | None, meridiem: str | None) -> int:
    h = int(hours)
    if meridiem and meridiem.lower().startswith("p") and h < 12:
        h += 12
    if meridiem and meridiem.lower().startswith("a") and h == 12:
        h = 0
    return h


def trip_itinerary(task: str) -> dict[str, Any]:
    params: dict[str, Any] = {"n_activities": require(count_of(task, "activities|activity|stops|events|visits"), "the number of activities")}
    m = re.search(rf"\b(?:between|from)\s+{CLOCK}\s+(?:and|to|until|till|-)\s+{CLOCK}", task, re.I)
    if m:
        params["start_hour"] = clock_hour(m.group(1), m.group(2), m.group(3))
        params["end_hour"] = clock_hour(m.group(4), m.group(5), m.group(6))
    return params


def grant_abstract(task: str) -> dict[str, Any]:
    low, high = bounds_of(task, "words?")
    params: dict[str, Any] = {"min_words": require(low, "the minimum number of words"),
                              "max_words": require(high, "the maximum number of words")}
    clause = clause_after(task, r"\b(?:do not|don't|never|not)\s+(?:use|using|include)\b|\bwithout(?:\s+using)?\b|\bavoid(?:ing)?\b")
    if clause:
        params["forbidden"] = single_words(word_list(clause), "the forbidden words")
    return params


SCHEMA_KEYS = {"type", "properties", "items", "enum", "const", "anyOf", "oneOf", "allOf", "$schema", "$ref"}


def json_schema(task: str) -> dict[str, Any]:
    decoder = json.JSONDecoder()
    for start in (i for i, c in enumerate(task) if c == "{"):
        try:
            value, _ = decoder.raw_decode(task[start:])
        except ValueError:
            continue
        if isinstance(value, dict) and SCHEMA_KEYS & set(value):
            return {"schema": value}
    raise ExtractionError("could not find a JSON schema (a JSON object with 'type' or 'properties') in the task")


def regex(task: str) -> dict[str, Any]:
    found = re.search(r"`([^`]+)`", task) or re.search(r"(?:regex|regular expression|pattern)\s*(?:of\s+)?/(.+?)/(?:\s|$|[.,;])", task, re.I)
    if found is None:
        found = re.search(r"(?:regex|regular expression|pattern)\s*:?\s*['\"](.+?)['\"](?:\s|$|[.,;])", task, re.I)
    pattern = require(found, "the regular expression (put it in `backticks`)").group(1)
    try:
        re.compile(pattern)
    except re.error as e:
        raise ExtractionError(f"{pattern!r} is not a valid regular expression ({e})") from None
    return {"pattern": pattern}


RULES: dict[str, Callable[[str], dict[str, Any]]] = {
    f.__name__: f
    for f in (
        sentence_word_count, sentence_words_at_positions, sentence_max_word_length, sentence_including_words,
        sentence_char_count, sentence_without_letter, paragraph_sentence_count, paragraph_sentence_starts,
        paragraph_forbidden_words, paragraph_last_words, square_poem, ingredient_list_budget, trip_itinerary,
        grant_abstract, json_schema, regex,
    )
}


def extract_params(name: str, task: str) -> dict[str, Any]:
    """The parameters of library program ``name`` read from ``task`` (`ExtractionError` if not found)."""
    rule = RULES.get(name)
    if rule is None:
        raise ExtractionError(f"no extraction rules for program {name!r}")
    return rule(task)
