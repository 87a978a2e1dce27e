"""One program for any combination of the constraint vocabulary (`programs.vocabulary`).

`Composed(lm, task, unit=..., constraints=[...])` merges its constraints into a `Layout` and
writes the text **one word per step**, so resampling happens only at word boundaries:

- at a boundary it forces the words the layout fixes (words at positions, every segment's first
  word, a segment's last word once its length is reached), may propose a required or last word
  (``propose_text``: weighted against the prior), or draws the next token from a mask that holds
  the word starts the constraints allow (banned letters, an initial letter, word length,
  characters left), a comma, and the segment's end once the segment may end;
- inside a word it samples whether the word goes on with a token the constraints allow
  (``word_goes_on``), so a banned letter never forces a non-word: its mass goes to ending the
  word, and a twist charges that end with the prior's wish to continue;
- the word that completes a segment is written in the same step as the segment's end, so
  resampling weighs a last word together with the end it must allow ("... of." is rare);
- every word it samples (not the task's own words) is an English word where the system has a
  word list (Debian's ``wamerican``): a particle that writes a non-word dies at the word's end
  and resampling replaces it;
- a segment never ends on a dangling word ("of", "the", ...) unless the task puts it there,
  and the text and every line open with a capital;
- a twist of ``-MISSING_WORD_COST`` per required or last word still missing keeps particles
  that place words early from losing to those that have not paid for them yet, and a note tells
  the proposal how many words are left.

The target is the follower asked for the task's content (`programs.topic`) restricted to texts
meeting every constraint; ``check`` re-verifies the whole task with each constraint's own
``holds``. `composed_source` writes a composed program as Python source (one class, built as
``cls(lm, task)``) that passes the planner validator, so it can run in the sandbox like any
planner-written program.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

from selfsteer.smc import LanguageModel, TokenMask

from .base import LibraryProgram
from .collie_paragraphs import is_paragraph
from .collie_sentences import current_word
from .phrasing import ExtractionError
from .registry import ProgramSpec
from .text import is_one_sentence, lines, same_word, words
from .tokens import END_MARKS, LETTERS_DIGITS
from .vocabulary import KINDS, UNITS, Constraint, Layout, constraint_from_dict, parse_prose

PRIORS = {"sentence": "Write a sentence.", "paragraph": "Write a paragraph.", "lines": "Write a poem."}
DEFAULT_SEGMENTS = {"sentence": 1, "paragraph": 3, "lines": 4}
DEFAULT_MAX_WORDS = {"sentence": 28, "paragraph": 18, "lines": 9}
DANGLING = frozenset(
    "a an the of to in on at by for with from into onto and or but nor as than that which who whose whom if so "
    "because while when where is are was were be been being its their his her my your our this these those very "
    "not no".split()
)  # words a sentence or line may not end with (unless the task puts them there)
WORD_LISTS = (Path("/usr/share/dict/american-english"), Path("/usr/share/dict/words"))  # Debian's wamerican
NOTE_WORDS_LEFT = 4


@cache
def english_words() -> frozenset[str] | None:
    """The system's English word list, lower-cased (None where no word list is installed)."""
    for path in WORD_LISTS:
        if path.exists():
            return frozenset(w.strip().lower() for w in path.read_text(encoding="utf-8", errors="ignore").splitlines())
    return None


def is_english(word: str, known: frozenset[str] | None) -> bool:
    """``word`` is in the word list (any case, curly apostrophes straightened) or a number; True without a list."""
    return known is None or word.isdigit() or word.lower().replace("’", "'") in known  # the proposal hears how many words are left from this many on


def capitalised(word: str) -> str:
    return word[0].upper() + word[1:]


class Composed(LibraryProgram):
    """Text (a ``sentence``, a ``paragraph`` or ``lines``) meeting every one of ``constraints``.

    Args:
        lm: the follower LM.
        task: the user's task (the proposal's prompt; its content becomes the target's).
        unit: ``"sentence"``, ``"paragraph"`` or ``"lines"``.
        constraints: vocabulary constraints, or their ``to_dict()`` forms.

    Raises ValueError, naming the conflict, when the constraints contradict each other.
    """

    MISSING_WORD_COST = 8.0  # nats: a rough prior log-probability of forcing a word

    def __init__(self, lm: LanguageModel, task: str, *, unit: str, constraints: Sequence[Constraint | dict[str, Any]]):
        if unit not in UNITS:
            raise ValueError(f"unit must be one of {', '.join(UNITS)}, got {unit!r}")
        self.unit = unit
        self.constraints = [c if isinstance(c, Constraint) else constraint_from_dict(c) for c in constraints]
        self.layout = self.merge(unit, self.constraints)
        lay = self.layout
        self.PRIOR = PRIORS[unit]
        super().__init__(lm, task, max_tokens=4 * lay.max_words + 3 * lay.n_segments + 8)
        self.placed_last = False  # the word just forced ends its segment

    # ----- the layout ------------------------------------------------------------------------
    @staticmethod
    def merge(unit: str, constraints: Sequence[Constraint]) -> Layout:
        """The constraints' `Layout` with defaults filled in; ValueError on a contradiction."""
        lay = Layout(unit)
        for c in constraints:
            c.apply(lay)
        if unit == "sentence":
            lay.n_segments = 1
        lay.n_segments = lay.n_segments or DEFAULT_SEGMENTS[unit]
        fixed = max(lay.words_at, default=0)
        if lay.segment_max_words is None:
            lay.segment_max_words = max(DEFAULT_MAX_WORDS[unit], lay.segment_min_words + 8, fixed + 4)
        if lay.max_words is None:
            lay.max_words = lay.n_segments * lay.segment_max_words
        if unit == "sentence":
            lay.segment_min_words = max(lay.segment_min_words, lay.min_words, fixed)
            lay.segment_max_words = lay.max_words = min(lay.segment_max_words, lay.max_words)
        lay.min_words = max(lay.min_words, fixed, len(lay.required_words) if unit == "sentence" else 1)
        if lay.min_words > lay.max_words or lay.segment_min_words > lay.segment_max_words:
            raise ValueError(f"the constraints ask for at least {max(lay.min_words, lay.segment_min_words)} words "
                             f"but allow at most {min(lay.max_words, lay.segment_max_words)}")
        if fixed > lay.max_words:
            raise ValueError(f"word {fixed} is fixed but the text has at most {lay.max_words} words")
        if lay.segment_first_word and lay.segment_first_letters:
            raise ValueError("every line cannot both start with a given word and spell an acrostic")
        fixed_words = [*lay.words_at.values(), *(lay.segment_last_words or []), *lay.required_words]
        fixed_words += [lay.segment_first_word] if lay.segment_first_word else []
        for word in fixed_words:
            Composed.check_fixed(lay, word)
        return lay

    @staticmethod
    def check_fixed(lay: Layout, word: str) -> None:
        """ValueError when a word the task requires breaks another of its constraints."""
        if not word or not all(c in LETTERS_DIGITS or c in "'’-" for c in word):
            raise ValueError(f"{word!r} must be one word of letters, digits, hyphens or apostrophes")
        if bad := set(word.lower()) & set(lay.banned_letters):
            raise ValueError(f"the required word {word!r} contains the banned letter {sorted(bad)[0]!r}")
        if any(same_word(word, b) for b in lay.banned_words):
            raise ValueError(f"the word {word!r} is both required and banned")
        if lay.max_word_chars is not None and len(word) > lay.max_word_chars:
            raise ValueError(f"the required word {word!r} is longer than {lay.max_word_chars} characters")
        if lay.word_initial and word[0].lower() != lay.word_initial:
            raise ValueError(f"the required word {word!r} does not start with {lay.word_initial!r}")

    # ----- where the writer is ---------------------------------------------------------------
    def position(self) -> tuple[int, int, int]:
        """(segments finished, words in the current segment, words in all)."""
        text = self.text
        if self.unit == "lines":
            done = text.count("\n") + (1 if text.endswith(END_MARKS) else 0)
            current = text.split("\n")[-1]
        else:
            done = sum(text.count(m) for m in END_MARKS)
            current = text
            for m in END_MARKS:
                current = current.split(m)[-1]
        return done, len(words(current)) if not text.endswith(("\n", *END_MARKS)) else 0, len(words(text))

    def at_segment_start(self) -> bool:
        return not self.text or self.text.endswith(("\n", *END_MARKS))

    def missing_required(self) -> list[str]:
        present = words(self.text)
        return [w for w in self.layout.required_words if not any(same_word(w, p) for p in present)]

    def last_word_due(self, k: int) -> str | None:
        last = self.layout.segment_last_words
        return last[k] if last and k < len(last) else None

    def may_end(self, k: int, n: int, total: int) -> bool:
        lay = self.layout
        if n < lay.segment_min_words or (self.last_word_due(k) and not self.placed_last) or self.text.endswith(","):
            return False
        if lay.n_chars is not None and lay.n_chars - len(self.text) != 1:
            return False
        last = words(self.text)[-1:] or [""]
        if last[0].lower() in DANGLING and not self.placed_last and total not in lay.words_at:
            return False  # "... the image of a." is not a sentence a person would end
        final = k == lay.n_segments - 1
        return not final or (total >= lay.min_words and not self.missing_required()
                             and all(p <= total for p in lay.words_at))

    def must_end(self, k: int, n: int, total: int) -> bool:
        lay = self.layout
        return n > 0 and (self.placed_last or n >= lay.segment_max_words or total >= lay.max_words
                          or (lay.n_chars is not None and lay.n_chars - len(self.text) <= 1))

    # ----- masks -----------------------------------------------------------------------------
    def word_filter(self, room: int | None) -> TokenMask:
        """Tokens the constraints allow inside a word (``room``: characters it may still grow)."""
        t, lay = self.tokens, self.layout
        mask = t.word_start | t.opening | t.word_cont | t.digit_cont | t.comma
        if lay.banned_letters:
            mask = mask & t.without_letters(lay.banned_letters)
        if lay.banned_words:
            mask = mask & t.not_words(lay.banned_words)
        if room is not None:
            mask = mask & t.word_length(max(room, 0))
        if lay.n_chars is not None:
            mask = mask & t.char_length(max(lay.n_chars - len(self.text) - 1, 0))
        return mask

    def initial_mask(self, k: int) -> TokenMask | None:
        """Word starts with the required first letter (acrostic line ``k`` or every word)."""
        lay = self.layout
        letter = lay.word_initial
        if lay.segment_first_letters and self.at_segment_start():
            letter = lay.segment_first_letters[k].lower()
        if letter is None:
            return None
        return self.lm.masks.where(f"compose.initial({letter})", lambda s: s.strip()[:1].lower() == letter)

    def end_mask(self, k: int) -> TokenMask:
        t = self.tokens
        return t.newline if self.unit == "lines" and k < self.layout.n_segments - 1 else t.ends

    def boundary_mask(self, k: int, n: int, total: int) -> TokenMask:
        """The next token at a word boundary: an allowed word start, a comma, or the segment's end."""
        t, lay = self.tokens, self.layout
        start = t.none
        if n < lay.segment_max_words and total < lay.max_words:
            if not self.text or self.text.endswith("\n"):
                start = t.opening & self.lm.masks.where("compose.capital", lambda s: s[:1].isupper())
            elif self.text.endswith(END_MARKS):
                start = t.capital_start
            else:
                start = t.word_start
            start = start & self.word_filter(lay.max_word_chars)
            if n + 1 >= lay.segment_max_words or total + 1 >= lay.max_words:  # the segment's last word
                start = start & self.tokens.not_words(DANGLING)
            if (initial := self.initial_mask(k)) is not None:
                start = start & initial
            if n > 0 and self.text[-1] in LETTERS_DIGITS:
                start = start | (t.comma & self.word_filter(None))
        return start | self.end_mask(k) if self.may_end(k, n, total) else start

    # ----- writing ---------------------------------------------------------------------------
    def forced_word(self, k: int, n: int, total: int) -> str | None:
        lay = self.layout
        if n == 0 and lay.segment_first_word:
            return lay.segment_first_word
        if (total + 1) in lay.words_at:
            return lay.words_at[total + 1]
        last = self.last_word_due(k)
        if last and n + 1 >= lay.segment_max_words:
            return last
        return None

    async def write_word(self, word: str) -> None:
        """Force ``word`` (capitalised at a segment's start), scored by the prior."""
        if self.at_segment_start():
            text = capitalised(word) if not self.text or self.text.endswith("\n") else " " + capitalised(word)
        else:
            text = " " + word
        await self.extend_with(text)

    async def finish_word(self) -> None:
        """Continue the word just started until ``word_ends`` says it is complete (allowed tokens only)."""
        lay = self.layout
        while True:
            cont = self.continuation()
            if cont is self.tokens.none:
                return
            room = None if lay.max_word_chars is None else lay.max_word_chars - len(current_word(self.text))
            allowed = cont & self.word_filter(room)
            if not allowed.array.any():
                return
            if not await self.word_goes_on(allowed):
                return
            await self.next_token(allowed)

    async def write_next(self) -> None:
        """One step: end a segment, or write one whole word (forced, proposed or sampled)."""
        lay = self.layout
        k, n, total = self.position()
        if self.at_segment_start() and k >= lay.n_segments:
            await self.end()
            return
        if self.must_end(k, n, total):
            self.condition(self.may_end(k, n, total))
            if not self.finished:
                self.placed_last = False
                await self.next_token(self.end_mask(k))
            return
        self.tell_words_left(k, n, total)
        forced = self.forced_word(k, n, total)
        if forced is not None:
            await self.write_word(forced)
            self.placed_last = forced == self.last_word_due(k) and n + 1 >= lay.segment_min_words
        elif not await self.maybe_propose(k, n, total):
            tok = await self.next_token(self.boundary_mask(k, n, total))
            if tok.text in END_MARKS or tok.text == "\n":
                return
            await self.finish_word()
            word = current_word(self.text) or (words(self.text)[-1:] or [""])[0]
            self.condition(not any(same_word(word, b) for b in lay.banned_words) and is_english(word, english_words()))  # cached: never copied with particles
        if not self.finished and self.must_end(*self.position()):
            await self.write_next()  # look-ahead: the segment's end joins the word that forces it

    async def maybe_propose(self, k: int, n: int, total: int) -> bool:
        """Perhaps place a segment's last word or a missing required word now; True if placed."""
        lay = self.layout
        last = self.last_word_due(k)
        if last and n + 1 >= lay.segment_min_words and not self.at_segment_start():
            left = lay.segment_max_words - n
            if await self.propose_text([" " + last], at_least=1.0 / max(left, 1)) is not None:
                self.placed_last = True
                return True
        missing = self.missing_required()
        if missing and (total + 1) not in lay.words_at:
            slots = max(lay.max_words - total - len([p for p in lay.words_at if p > total]), 1)
            texts = [capitalised(w) if not self.text else (" " + capitalised(w) if self.at_segment_start() else " " + w)
                     for w in missing]
            if self.text and self.text.endswith("\n"):
                texts = [capitalised(w) for w in missing]
            at_least = min(1.0, len(missing) / slots) / len(missing)
            if await self.propose_text(texts, at_least=at_least) is not None:
                return True
        return False

    def tell_words_left(self, k: int, n: int, total: int) -> None:
        """A note to the proposal (only) when the segment or the text must end soon."""
        lay = self.layout
        left = min(lay.segment_max_words - n, lay.max_words - total)
        if lay.segment_min_words == lay.segment_max_words or lay.max_words == lay.min_words:
            if 0 < left <= NOTE_WORDS_LEFT:
                self.note(f"exactly {left} more word{'s' if left > 1 else ''}, then end the {lay.segment_noun()}.")

    def twist_missing(self) -> None:
        """Look-ahead: each required or last word still to place will cost about ``MISSING_WORD_COST``."""
        if not self.finished:
            due = len(self.missing_required()) + (1 if self.last_word_due(self.position()[0]) and not self.placed_last else 0)
            self.twist(-self.MISSING_WORD_COST * due)

    async def step(self):
        await self.write_next()
        self.twist_missing()

    # ----- verification ----------------------------------------------------------------------
    def shape_ok(self, text: str) -> bool:
        if self.unit == "sentence":
            return is_one_sentence(text)
        if self.unit == "paragraph":
            return is_paragraph(text)
        return bool(lines(text))

    def verify(self, text: str) -> bool:
        """The whole task: the unit's shape and every constraint's own check."""
        return isinstance(text, str) and self.shape_ok(text) and all(c.holds(text, self.unit) for c in self.constraints)

    def check(self, text: str) -> bool:
        return self.verify(text)

    def interpretation(self) -> str:
        """How the task was read, e.g. ``sentence(word_count(min_words=9, max_words=9), ...)``."""
        return interpretation(self.unit, self.constraints)


def read_composed(task: str) -> dict[str, Any]:
    """The unit and every vocabulary constraint ``task`` states (`ExtractionError` if none)."""
    unit, constraints = parse_prose(task)
    if not constraints:
        raise ExtractionError("could not find any constraint of the vocabulary in the task")
    return {"unit": unit, "constraints": [c.to_dict() for c in constraints]}


class ComposedProgram(Composed):
    """The registered composed program, built from parameters (see `Composed`).

    Strategy: merge the constraints into a `Layout`; force fixed words, propose required and
    last words at word boundaries, and draw every other word from masks that admit only what
    the constraints allow, ending a segment only where it may end.
    Step granularity: one word (or one end mark), so resampling happens at word boundaries.
    End conditions: the end mark of the last sentence (or line), then EOS; ``check`` verifies
    the unit's shape and every constraint.
    """

    SPEC = ProgramSpec(
        name="composed",
        family="composed",
        extract=read_composed,
        description="Write a sentence, paragraph or poem meeting several constraints of the vocabulary at once.",
        params_schema={
            "type": "object",
            "properties": {
                "unit": {"enum": list(UNITS)},
                "constraints": {
                    "type": "array",
                    "items": {"type": "object", "properties": {"kind": {"enum": list(KINDS)}}, "required": ["kind"]},
                },
            },
            "required": ["unit", "constraints"],
            "additionalProperties": False,
        },
        examples=[
            ("Write a 9-word sentence about a bicycle without the letter e.",
             {"unit": "sentence", "constraints": [{"kind": "word_count", "min_words": 9, "max_words": 9},
                                                  {"kind": "banned_letters", "letters": "e"}]}),
            ("Write an acrostic poem about the rain with one line per letter of RAIN.",
             {"unit": "lines", "constraints": [{"kind": "acrostic", "word": "RAIN"}]}),
            ("Write a paragraph of 3 sentences, each starting with 'Then'.",
             {"unit": "paragraph", "constraints": [{"kind": "segment_count", "n": 3},
                                                   {"kind": "segment_starts", "word": "Then"}]}),
        ],
    )

    def __init__(self, lm: LanguageModel, task: str, *, unit: str, constraints: Sequence[Constraint | dict[str, Any]]):
        super().__init__(lm, task, unit=unit, constraints=constraints)

    async def step(self):
        await self.write_next()
        self.twist_missing()

    def check(self, text: str) -> bool:
        return self.verify(text)


def interpretation(unit: str, constraints: Sequence[Constraint]) -> str:
    """``unit(constraint, ...)``: how a composed program reads its task."""
    return f"{unit}({', '.join(c.describe() for c in constraints)})"


def composed_source(unit: str, constraints: Sequence[Constraint]) -> str:
    """Python source of one program class enforcing ``constraints`` (built as ``cls(lm, task)``)."""
    classes = sorted({type(c).__name__ for c in constraints})
    args = ", ".join(f"{type(c).__name__}({', '.join(f'{k}={v!r}' for k, v in vars(c).items())})" for c in constraints)
    return (
        f'"""Composed program: {interpretation(unit, constraints)}."""\n\n'
        "from selfsteer.programs.compose import Composed\n"
        f"from selfsteer.programs.vocabulary import {', '.join(classes)}\n\n\n"
        "class ComposedTask(Composed):\n"
        "    def __init__(self, lm, task):\n"
        f"        super().__init__(lm, task, unit={unit!r}, constraints=[{args}])\n\n"
        "    async def step(self):\n"
        "        await self.write_next()\n"
        "        self.twist_missing()\n\n"
        "    def check(self, output):\n"
        "        return self.verify(output)\n"
    )
