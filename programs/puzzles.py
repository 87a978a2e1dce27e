"""DisCIPL-style puzzles: a square poem, an ingredient list under a budget, a trip itinerary and a
grant-proposal abstract under word limits.

Numbers (prices, times) are written with ``one_of`` over the values still allowed, so budgets
and schedules hold by construction; free text uses prose tokens (`ProseTokens`).
"""

from __future__ import annotations

import re
from typing import Any

from selfsteer.smc import LanguageModel

from .base import LibraryProgram
from .collie_paragraphs import sentence_state
from .collie_sentences import check_word
from .phrasing import (
    BELOW,
    CLOCK,
    NUM,
    ExtractionError,
    bounds_of,
    clause_after,
    count_of,
    number,
    require,
    single_words,
    word_list,
)
from .registry import ProgramSpec
from .text import count_words, ends_sentence, lines, same_word, words
from .tokens import END_MARKS, LETTERS_DIGITS, PROSE_CHARS, continues_word

FAMILY = "puzzles"
ITEM_LINE = re.compile(r"^- (?P<name>[^:$\n]+): \$(?P<dollars>\d+)\.(?P<cents>\d\d)$")
ACTIVITY_LINE = re.compile(r"^(?P<h1>\d{1,2}):(?P<m1>\d\d)-(?P<h2>\d{1,2}):(?P<m2>\d\d): (?P<what>\S.*)$")


def read_square_poem(task: str) -> dict[str, Any]:
    """The parameters of ``square_poem`` read from ``task`` (`ExtractionError` naming what is missing)."""
    if not re.search(r"\blines?\b", task, re.I):
        raise ExtractionError("a square poem needs a number of lines")
    n_lines, n_words = count_of(task, "lines?"), count_of(task, "words?")
    if n_lines and n_words and n_lines != n_words:
        raise ExtractionError(f"{n_lines} lines of {n_words} words is not a square poem")
    return {"n": require(n_lines or n_words, "the number of lines")}


class SquarePoem(LibraryProgram):
    """A poem of ``n`` lines with exactly ``n`` words on each line.

    Strategy: write prose tokens line by line, completing each word in the step that starts it
    (``complete_word``); a new word may start only while the line has fewer than ``n`` words;
    the step that completes the ``n``-th word also writes one punctuation mark or the break
    (the last line ends the poem instead), so the last word is never glued to the next one.
    Step granularity: one word.
    End conditions: EOS (or an end mark, then EOS) after the ``n``-th word of line ``n``.
    """

    PRIOR = "Write a poem."
    SPEC = ProgramSpec(
        name="square_poem",
        family=FAMILY,
        covers=frozenset({"segment_count", "segment_words"}),
        extract=read_square_poem,
        description="Write a poem with N lines where every line has exactly N words (a square poem).",
        params_schema={
            "type": "object",
            "properties": {"n": {"type": "integer", "minimum": 2, "maximum": 12}},
            "required": ["n"],
            "additionalProperties": False,
        },
        examples=[
            ("Write a poem with 8 lines, where each line has exactly 8 words.", {"n": 8}),
            ("Write a square poem: 5 lines of 5 words each.", {"n": 5}),
            ("Compose a poem about the sea with four lines, each line containing exactly four words.", {"n": 4}),
            ("Write a 6-line poem about the wind in which every line has exactly 6 words.", {"n": 6}),
            ("Compose a poem of three lines with three words per line.", {"n": 3}),
        ],
    )

    def __init__(self, lm: LanguageModel, task: str, *, n: int):
        super().__init__(lm, task, max_tokens=3 * n * n + 2 * n + 8)
        self.n = n

    async def step(self):
        t = self.tokens
        line_no = self.text.count("\n")
        in_line = count_words(self.text.split("\n")[-1])
        last_line = line_no == self.n - 1
        if in_line < self.n:
            await self.next_token(self.prose_mask(new_word=True, end=False))
            await self.complete_word()
            if self.finished or count_words(self.text.split("\n")[-1]) < self.n:
                return
        mask = self.lm.masks.eos if last_line else t.newline
        if self.text[-1] in LETTERS_DIGITS:
            mask = mask | t.ends | (t.none if last_line else t.comma)
        tok = await self.next_token(mask)
        if tok.is_eos:
            self.finish(self.text)
        elif last_line and tok.text in END_MARKS:
            await self.end()

    def check(self, text: str) -> bool:
        rows = lines(text)
        return len(rows) == self.n and all(count_words(row) == self.n for row in rows)


def read_ingredient_list_budget(task: str) -> dict[str, Any]:
    """The parameters of ``ingredient_list_budget`` read from ``task`` (`ExtractionError` naming what is missing)."""
    low, high = bounds_of(task, "ingredients?|items?|things?|products?")
    max_items = high or count_of(task, "ingredients?|items?")
    if max_items is None and (m := re.search(rf"\b{NUM}\s+(?:[a-z]+\s+)?(?:ingredients?|items?|products?|things)\b", task, re.I)):
        low = max_items = number(m.group(1))  # "3 grocery items": exactly three
    m = re.search(rf"(\b{BELOW}\s+)?\$\s?(\d+(?:\.\d{{1,2}})?)", task, re.I)
    budget = float(require(m, "the budget (a $ amount)").group(2))
    if m.group(1):  # "less than $18": strictly below
        budget = round(budget - 0.01, 2)
    params: dict[str, Any] = {"max_items": require(max_items, "the maximum number of ingredients"), "budget": budget}
    if low is not None:
        params["min_items"] = low
    return params


class IngredientList(LibraryProgram):
    """An ingredient list of at most ``max_items`` lines "- name: $D.CC" costing at most ``budget``.

    Strategy: one line per step: force "- ", let the LM name an ingredient (prose tokens up to
    ":"), force " $", then write the price with ``one_of`` over the amounts that keep the total
    within budget (leaving $0.50 for each ingredient still required); a note tells the proposal
    how much money is left. After ``min_items`` lines the LM may end the list.
    Step granularity: one ingredient line.
    End conditions: EOS after a line (allowed from ``min_items`` lines), or ``max_items`` lines.
    """

    PRIOR = "Write an ingredients list."
    SPEC = ProgramSpec(
        name="ingredient_list_budget",
        family=FAMILY,
        extract=read_ingredient_list_budget,
        description=(
            "Write an ingredients list for a recipe with at most N ingredients, each with a dollar "
            "price, whose total cost stays within a budget."
        ),
        params_schema={
            "type": "object",
            "properties": {
                "max_items": {"type": "integer", "minimum": 1, "maximum": 20},
                "budget": {"type": "number", "exclusiveMinimum": 0},
                "min_items": {"type": "integer", "minimum": 1, "maximum": 20, "default": 3},
            },
            "required": ["max_items", "budget"],
            "additionalProperties": False,
        },
        examples=[
            (
                "Write an ingredients list for a chocolate chip brownie recipe with at most 7 ingredients costing less than $18.00 total. The list should be in dollar amounts, do not include any other text.",
                {"max_items": 7, "budget": 17.99},
            ),
            ("List the ingredients for a vegetable soup, no more than 6 items, with prices adding up to at most $12.", {"max_items": 6, "budget": 12.0}),
            ("Give me a shopping list of up to 5 ingredients for pancakes with a total budget of $10.50.", {"max_items": 5, "budget": 10.5}),
            ("Make a grocery list with no more than 4 items for a fruit salad, each with a price, total under $9.", {"max_items": 4, "budget": 8.99}),
            ("Write an ingredients list for guacamole with up to 6 ingredients and prices in dollars that add up to at most $15.", {"max_items": 6, "budget": 15.0}),
        ],
    )

    MIN_PRICE_CENTS = 10
    RESERVE_CENTS = 50  # kept back for each ingredient still required

    def __init__(self, lm: LanguageModel, task: str, *, max_items: int, budget: float, min_items: int = 3):
        self.max_items = max_items
        self.min_items = min(min_items, max_items)
        self.budget_cents = int(round(budget * 100))
        if self.budget_cents < self.RESERVE_CENTS * self.min_items:
            raise ValueError(f"a budget of ${budget:.2f} is too small for {self.min_items} ingredients (give at least $0.50 each)")
        super().__init__(lm, task, max_tokens=26 * max_items + 10)
        name_chars = PROSE_CHARS | frozenset(" /()")
        self.name_tokens = lm.masks.where(
            "ingredient_name", lambda t: bool(t.strip()) and all(c in name_chars for c in t) and "  " not in t
        )

    def spent_cents(self, text: str) -> list[int]:
        return [int(m["dollars"]) * 100 + int(m["cents"]) for m in map(ITEM_LINE.match, lines(text)) if m]

    async def step(self):
        prices = self.spent_cents(self.text)
        left = self.budget_cents - sum(prices)
        if prices:
            if len(prices) == self.max_items or left < self.MIN_PRICE_CENTS:
                await self.end()
                return
            if len(prices) >= self.min_items:
                tok = await self.next_token(self.tokens.newline | self.lm.masks.eos)
                if tok.is_eos:
                    self.finish(self.text)
                    return
            else:
                await self.extend_with("\n")
        self.note(f"${left / 100:.2f} left for at most {self.max_items - len(prices)} more ingredients.")
        await self.extend_with("- ")
        await self.next_token(self.tokens.opening | self.tokens.digit(range(1, 10)))
        colon = self.tokens.exactly(":")
        chunk = await self.chunk_within(self.name_tokens | colon, stop=":", max_tokens=10)
        if chunk.stop_reason != "stop":
            await self.extend_with(":")
        await self.extend_with(" $")
        cap = left - self.RESERVE_CENTS * max(self.min_items - len(prices) - 1, 0)
        dollars = int((await self.one_of([f"{d}." for d in range(cap // 100 + 1)]))[:-1])
        low = self.MIN_PRICE_CENTS if dollars == 0 else 0
        await self.one_of([f"{c:02d}" for c in range(low, min(99, cap - 100 * dollars) + 1)])

    def check(self, text: str) -> bool:
        rows = lines(text)
        prices = self.spent_cents(text)
        return 1 <= len(rows) <= self.max_items and len(prices) == len(rows) and sum(prices) <= self.budget_cents


def clock(minutes: int) -> str:
    return f"{minutes // 60}:{minutes % 60:02d}"


def clock_hour(hours: str, minutes: str | None, meridiem: str | None) -> int:
    h = int(hours)
    if meridiem and meridiem.lower().startswith("p") and h < 12:
        h += 12
    if meridiem and meridiem.lower().startswith("a") and h == 12:
        h = 0
    return h


def read_trip_itinerary(task: str) -> dict[str, Any]:
    """The parameters of ``trip_itinerary`` read from ``task`` (`ExtractionError` naming what is missing)."""
    params: dict[str, Any] = {"n_activities": require(count_of(task, "activities|activity|stops|events|visits"), "the number of activities")}
    m = re.search(rf"\b(?:between|from)\s+{CLOCK}\s+(?:and|to|until|till|-)\s+{CLOCK}", task, re.I)
    if m:
        params["start_hour"] = clock_hour(m.group(1), m.group(2), m.group(3))
        params["end_hour"] = clock_hour(m.group(4), m.group(5), m.group(6))
    return params


class TripItinerary(LibraryProgram):
    """A one-day itinerary of ``n_activities`` lines "H:MM-H:MM: activity", in order, without
    overlaps, between ``start_hour`` and ``end_hour`` (24-hour clock, half-hour slots).

    Strategy: one line per step: the first activity starts when the day does; later start times
    and all end times are written with ``one_of`` over the slots that keep the day in order and
    leave 30 minutes for every activity still to come; then the LM describes the activity (prose
    tokens up to a newline, or EOS on the last line).
    Step granularity: one activity line.
    End conditions: EOS after the last activity (forced if its description runs long).
    """

    PRIOR = "Write a travel itinerary."
    SPEC = ProgramSpec(
        name="trip_itinerary",
        family=FAMILY,
        extract=read_trip_itinerary,
        description=(
            "Plan a one-day trip itinerary with a given number of activities, each with a start and "
            "end time, in order and without overlap, within the day's opening hours."
        ),
        params_schema={
            "type": "object",
            "properties": {
                "n_activities": {"type": "integer", "minimum": 1, "maximum": 10},
                "start_hour": {"type": "integer", "minimum": 0, "maximum": 23, "default": 9},
                "end_hour": {"type": "integer", "minimum": 1, "maximum": 24, "default": 18},
            },
            "required": ["n_activities"],
            "additionalProperties": False,
        },
        examples=[
            (
                "Plan a one-day trip itinerary for Paris with exactly 4 activities between 9:00 and 18:00. Write one line per activity as 'H:MM-H:MM: activity', in order and without overlaps.",
                {"n_activities": 4, "start_hour": 9, "end_hour": 18},
            ),
            ("Make a day itinerary for Rome with 5 activities from 8:00 to 20:00, one per line with start and end times.", {"n_activities": 5, "start_hour": 8, "end_hour": 20}),
            ("Write a schedule of 3 activities for a day trip to the beach, between 10 AM and 4 PM.", {"n_activities": 3, "start_hour": 10, "end_hour": 16}),
            ("Create an itinerary for a day in London with 4 stops between 9 AM and 5 PM, each with start and end times.", {"n_activities": 4, "start_hour": 9, "end_hour": 17}),
            ("Schedule 6 activities for a day in Tokyo from 8:00 to 21:00, one line per activity with times.", {"n_activities": 6, "start_hour": 8, "end_hour": 21}),
        ],
    )

    SLOT = 30
    DESCRIPTION_TOKENS = 24

    def __init__(self, lm: LanguageModel, task: str, *, n_activities: int, start_hour: int = 9, end_hour: int = 18):
        if (end_hour - start_hour) * 60 < n_activities * self.SLOT:
            raise ValueError(f"{n_activities} activities of 30 minutes do not fit between {start_hour}:00 and {end_hour}:00")
        super().__init__(lm, task, max_tokens=(self.DESCRIPTION_TOKENS + 16) * n_activities + 10)
        self.n_activities, self.start_hour, self.end_hour = n_activities, start_hour, end_hour
        t = self.tokens
        self.describe_tokens = t.word_start | t.word_cont | t.digit_cont | t.comma | t.ends

    def activity_times(self, text: str) -> list[tuple[int, int]]:
        out = []
        for m in map(ACTIVITY_LINE.match, lines(text)):
            if m:
                out.append((int(m["h1"]) * 60 + int(m["m1"]), int(m["h2"]) * 60 + int(m["m2"])))
        return out

    async def step(self):
        done = self.activity_times(self.text)
        i = len(done)
        if i and not self.text.endswith("\n"):  # the description ran out of tokens before its newline
            await self.extend_with("\n")
        earliest = done[-1][1] if done else self.start_hour * 60
        latest_end = self.end_hour * 60 - self.SLOT * (self.n_activities - i - 1)
        if i == 0:  # the day starts with the first activity
            await self.extend_with(clock(earliest) + "-")
            start = clock(earliest) + "-"
        else:
            start = await self.one_of([clock(m) + "-" for m in range(earliest, latest_end - self.SLOT + 1, self.SLOT)])
        begin = int(start[:-1].split(":")[0]) * 60 + int(start[:-1].split(":")[1])
        await self.one_of([clock(m) + ":" for m in range(begin + self.SLOT, latest_end + 1, self.SLOT)])
        await self.next_token(self.tokens.capital_start)
        last = i + 1 == self.n_activities
        closing = self.lm.masks.eos if last else self.tokens.newline
        chunk = await self.chunk_within(self.describe_tokens | closing, stop="\n", max_tokens=self.DESCRIPTION_TOKENS, allow_eos=last)
        if chunk.eos:
            self.finish(self.text)
        elif last:
            await self.end()

    def check(self, text: str) -> bool:
        rows = lines(text)
        times = self.activity_times(text)
        if len(rows) != self.n_activities or len(times) != len(rows):
            return False
        edges = [self.start_hour * 60] + [m for pair in times for m in pair] + [self.end_hour * 60]
        return all(a <= b for a, b in zip(edges, edges[1:], strict=False)) and all(s < e for s, e in times)


def read_grant_abstract(task: str) -> dict[str, Any]:
    """The parameters of ``grant_abstract`` read from ``task`` (`ExtractionError` naming what is missing)."""
    low, high = bounds_of(task, "words?")
    params: dict[str, Any] = {"min_words": require(low, "the minimum number of words"),
                              "max_words": require(high, "the maximum number of words")}
    clause = clause_after(task, r"\b(?:do not|don't|never|not)\s+(?:use|using|include)\b|\bwithout(?:\s+using)?\b|\bavoid(?:ing)?\b")
    if clause:
        params["forbidden"] = single_words(word_list(clause), "the forbidden words")
    return params


class GrantAbstract(LibraryProgram):
    """A grant-proposal abstract "Abstract: ..." of ``min_words..max_words`` words that avoids
    the ``forbidden`` words.

    Strategy: force "Abstract:", then write prose tokens sentence by sentence, excluding tokens
    that spell a forbidden word (a word assembled from pieces is caught by ``condition``); a new
    word may start only below ``max_words``; after a sentence, the text may end once it has
    ``min_words`` words. A note tells the proposal how many words remain.
    Step granularity: one token.
    End conditions: EOS after a complete sentence with at least ``min_words`` words; at
    ``max_words`` the sentence must end and the text ends.
    """

    PRIOR = "Write a grant proposal abstract."
    SPEC = ProgramSpec(
        name="grant_abstract",
        family=FAMILY,
        covers=frozenset({"word_count", "banned_words", "segment_starts"}),
        extract=read_grant_abstract,
        description=(
            "Write a grant proposal abstract starting with 'Abstract:' whose length is between a "
            "minimum and a maximum number of words, optionally without using some forbidden terms."
        ),
        params_schema={
            "type": "object",
            "properties": {
                "min_words": {"type": "integer", "minimum": 1, "maximum": 400},
                "max_words": {"type": "integer", "minimum": 1, "maximum": 400},
                "forbidden": {"type": "array", "items": {"type": "string", "minLength": 1}, "default": []},
            },
            "required": ["min_words", "max_words"],
            "additionalProperties": False,
        },
        examples=[
            (
                "Write an abstract for a grant proposal on elephant ecology. Your response should start with 'Abstract: '. The abstract must be between 75 and 100 words. Do not use the terms conservation, wildlife or habitat.",
                {"min_words": 75, "max_words": 100, "forbidden": ["conservation", "wildlife", "habitat"]},
            ),
            ("Write a grant proposal abstract about urban gardening in 40 to 60 words, beginning with 'Abstract:'.", {"min_words": 40, "max_words": 60}),
            ("Draft the abstract of a research grant on coral reefs, at most 50 words and at least 30, without the words ocean or climate.", {"min_words": 30, "max_words": 50, "forbidden": ["ocean", "climate"]}),
            ("Write a grant proposal abstract on soil microbes starting with 'Abstract:'; it must be between 50 and 80 words and must not use the words 'bacteria' or 'farm'.", {"min_words": 50, "max_words": 80, "forbidden": ["bacteria", "farm"]}),
            ("Write the abstract of a grant proposal about youth literacy, 60 to 90 words long, starting with 'Abstract:'.", {"min_words": 60, "max_words": 90}),
        ],
    )

    LABEL = "Abstract:"
    MIN_SENTENCE_WORDS = 4

    def __init__(self, lm: LanguageModel, task: str, *, min_words: int, max_words: int, forbidden: list[str] | None = None):
        if min_words > max_words:
            raise ValueError(f"min_words ({min_words}) is above max_words ({max_words})")
        super().__init__(lm, task, max_tokens=3 * max_words + 12)
        self.min_words, self.max_words = min_words, max_words
        self.forbidden = [check_word(w, "each forbidden word").lower() for w in (forbidden or [])]

    def body(self, text: str) -> str:
        return text[len(self.LABEL):] if text.startswith(self.LABEL) else text

    def uses_forbidden(self, text: str) -> bool:
        return any(same_word(w, f) for w in words(text) for f in self.forbidden)

    async def step(self):
        t = self.tokens
        if not self.text:
            await self.extend_with(self.LABEL)
            await self.next_token(t.capital_start)
            return
        n = count_words(self.body(self.text))
        left = self.max_words - n
        if left <= 15 and not self.hints:
            self.note(f"about {left} words left; finish the abstract.")
        before = self.text
        if before.endswith(END_MARKS):
            if n >= self.max_words:
                await self.end()
                return
            may_stop = self.lm.masks.eos if n >= self.min_words else t.none
            tok = await self.next_token((t.capital_start & t.not_words(self.forbidden)) | may_stop)
        else:
            _, in_sentence = sentence_state(self.body(before))
            end = in_sentence >= self.MIN_SENTENCE_WORDS or n >= self.max_words
            tok = await self.prose_token(new_word=n < self.max_words, end=end, extra=t.not_words(self.forbidden))
        if not continues_word(tok.text):  # every word of `before` is now complete
            self.condition(not self.uses_forbidden(before))
        if tok.is_eos:
            self.finish(self.text)

    def check(self, text: str) -> bool:
        text = text.strip()
        n = count_words(self.body(text))
        return text.startswith(self.LABEL) and ends_sentence(text) and self.min_words <= n <= self.max_words and not self.uses_forbidden(text)
