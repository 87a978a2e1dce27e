"""The constraint vocabulary: every constraint the offline planner recognises in a task.

Each constraint is a small frozen dataclass that carries, next to each other:

- ``parse(task, unit)``: its extraction rule (a classmethod returning the instances the task
  states, possibly none), written for free phrasing: number words and ordinals, quotes or none,
  "character"/"letter", "at most"/"no more than"/"under", "between 18 and 99";
- ``apply(layout)``: what it asks of the writer (`Layout`, read by `programs.compose`);
- ``holds(text, unit)``: its own verification of a finished text (shares no state with writing);
- ``describe()``: how it reads back in "interpreted as: ...".

Prose constraints (the text is a ``sentence``, a ``paragraph`` of sentences or ``lines``):

===================  ==========================================================================
``word_count``       words in the whole text: "exactly 9 words", "a 12-word", "at most 20 words"
``segment_words``    words in each sentence / line: "each sentence has 5 to 9 words"
``segment_count``    sentences (paragraph) or lines: "3 sentences", "a 4-line poem"
``char_count``       characters of the whole text: "exactly 40 characters"
``words_at``         words at positions: "the 3rd word is 'soft'", "word number 4 is music"
``banned_letters``   "without the letter e", "no 'o'", "never uses the characters a and i"
``banned_words``     "without the words 'car' and 'road'", "avoid the word snow"
``required_words``   "including 'candle'", "mentioning 'copper', 'orchard' and 'violin'"
``max_word_length``  "no word longer than 5 letters", "each word under 6 characters"
``segment_starts``   every sentence / line begins with a word: "each starting with 'Then'"
``acrostic``         line i starts with letter i of a word: "one line per letter of RAIN"
``word_initial``     every word starts with a letter: "every word starts with s"
``last_words``       sentence i ends with word i: "ends with the word 'home'"
===================  ==========================================================================

Structured constraints each map onto one library program: ``item_list`` (list items with
prices under a budget), ``json_record`` (a JSON object with typed, bounded keys) and ``regex``
(text matching a pattern in `backticks`).

`unsupported(task)` names constraints a task states that lie outside the vocabulary.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from .phrasing import (
    AT_MOST,
    BARE_LIST,
    BELOW,
    NUM,
    ORD,
    bounds_of,
    count_of,
    exact_count_of,
    number,
    ordinal,
)
from .text import lines, same_word, sentences, words

UNITS = ("sentence", "paragraph", "lines")
Q_OPEN, Q_CLOSE = "['\"‘“]", "['\"’”]"
WORD = rf"(?:{Q_OPEN}([A-Za-z][\w'’-]*){Q_CLOSE}|([A-Za-z][\w'’-]*))"  # a quoted or bare word (2 groups)
NEGATED = re.compile(r"\b(?:not|never|no|without|avoid\w*|don't|doesn't|forbid\w*|ban\w*|exclud\w*)\b[^.;,]{0,4}$", re.I)
STOP_WORDS = {"and", "or", "nor", "the", "a", "an", "with", "without", "that", "which", "in", "of", "to", "each", "every",
              "exactly", "at", "no", "where", "whose", "having", "has", "is", "ending", "ends", "starting", "starts",
              "beginning", "mentioning", "including", "using", "avoiding", "never", "not", "but", "all", "only"}


def first(*groups: str | None) -> str:
    return next(g for g in groups if g)


def items_after(text: str) -> list[str]:
    """The words listed at the start of ``text``: a run of quoted words ('a', 'b' and 'c'),
    else bare words separated by commas, "and", "or" up to the next clause."""
    quoted = re.match(rf"\s*:?\s*((?:{Q_OPEN}[^'\"‘’“”\n]+?{Q_CLOSE}(?:\s*,\s*(?:and\s+|or\s+)?|\s+(?:and|or|nor)\s+)?)+)", text)
    if quoted:
        return [q.strip() for q in re.findall(rf"{Q_OPEN}([^'\"‘’“”\n]+?){Q_CLOSE}", quoted.group(1))]
    found = []
    for piece in re.finditer(r"\s*(?:,\s*)?(?:(?:and|or|nor)\s+)?([A-Za-z][\w'’-]*)", text):
        if piece.start() != (found[-1][1] if found else 0) or piece.group(1).lower() in STOP_WORDS:
            break
        found.append((piece.group(1), piece.end()))
        if not re.match(r"\s*(?:,|and\b|or\b|nor\b)", text[piece.end():]):
            break
    return [w for w, _ in found]


@dataclass
class Layout:
    """What the constraints of one task ask of the writer, merged (read by `programs.compose`).

    Segments are the sentences of a paragraph or the lines of a poem (one segment: a sentence).
    Word positions and segment indices are 1-based. ``None`` means "not constrained".
    """

    unit: str
    n_segments: int | None = None
    segment_min_words: int = 1
    segment_max_words: int | None = None
    min_words: int = 1
    max_words: int | None = None
    n_chars: int | None = None
    words_at: dict[int, str] = field(default_factory=dict)
    segment_first_word: str | None = None
    segment_first_letters: str | None = None
    segment_last_words: list[str] | None = None
    word_initial: str | None = None
    banned_letters: str = ""
    banned_words: list[str] = field(default_factory=list)
    required_words: list[str] = field(default_factory=list)
    max_word_chars: int | None = None

    def set_segments(self, n: int, why: str) -> None:
        if self.n_segments is not None and self.n_segments != n:
            raise ValueError(f"{why} asks for {n} {self.segment_noun()}s but another constraint asks for {self.n_segments}")
        self.n_segments = n

    def segment_noun(self) -> str:
        return "line" if self.unit == "lines" else "sentence"


class Constraint:
    """Base of the vocabulary entries (see the module docstring)."""

    KIND: ClassVar[str]
    PROSE: ClassVar[bool] = True

    @classmethod
    def parse(cls, task: str, unit: str) -> list[Constraint]:
        raise NotImplementedError

    def apply(self, layout: Layout) -> None:
        raise NotImplementedError

    def holds(self, text: str, unit: str) -> bool:
        raise NotImplementedError

    def params(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.KIND, **self.params()}

    def values(self) -> set[Any]:
        """Its numbers and words (lower case), to compare with a library program's parameters."""
        return flat_values(list(self.params().values()))

    def describe(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{self.KIND}({args})"


def flat_values(value: Any) -> set[Any]:
    """Every number and word in ``value`` (nested dicts' keys too; strings lower-cased, digit
    strings as ints)."""
    if isinstance(value, dict):
        return set().union(*(flat_values(k) | flat_values(v) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return set().union(*(flat_values(v) for v in value))
    if isinstance(value, str):
        return {int(value)} if value.isdigit() else {value.lower()}
    if isinstance(value, bool) or value is None:
        return set()
    return {int(value)} if isinstance(value, float) and value.is_integer() else {value}


def segments_of(text: str, unit: str) -> list[str]:
    return lines(text) if unit == "lines" else sentences(text)


@dataclass(frozen=True)
class WordCount(Constraint):
    """The whole text has ``min_words..max_words`` words (equal bounds: exactly)."""

    KIND: ClassVar[str] = "word_count"
    min_words: int | None = None
    max_words: int | None = None

    @classmethod
    def parse(cls, task: str, unit: str) -> list[Constraint]:
        if unit != "sentence" and SegmentWords.per_segment(task):
            return []
        exact = exact_count_of(task, "words?")
        low, high = (exact, exact) if exact else bounds_of(task, "words?")
        return [cls(low, high)] if low or high else []

    def apply(self, layout: Layout) -> None:
        layout.min_words = max(layout.min_words, self.min_words or 1)
        if self.max_words is not None:
            layout.max_words = min(layout.max_words or self.max_words, self.max_words)
        if layout.unit == "sentence":
            layout.segment_min_words, layout.segment_max_words = layout.min_words, layout.max_words

    def holds(self, text: str, unit: str) -> bool:
        n = len(words(text))
        return (self.min_words or 0) <= n <= (self.max_words or n)


@dataclass(frozen=True)
class SegmentWords(Constraint):
    """Each sentence (or line) has ``min_words..max_words`` words."""

    KIND: ClassVar[str] = "segment_words"
    min_words: int | None = None
    max_words: int | None = None

    @staticmethod
    def per_segment(task: str) -> bool:
        return bool(re.search(r"\b(?:each|every|per|apiece)\b", task, re.I))

    @classmethod
    def parse(cls, task: str, unit: str) -> list[Constraint]:
        if unit == "sentence" or not cls.per_segment(task):
            return []
        exact = exact_count_of(task, "words?")
        low, high = (exact, exact) if exact else bounds_of(task, "words?")
        return [cls(low, high)] if low or high else []

    def apply(self, layout: Layout) -> None:
        layout.segment_min_words = max(layout.segment_min_words, self.min_words or 1)
        if self.max_words is not None:
            layout.segment_max_words = self.max_words

    def holds(self, text: str, unit: str) -> bool:
        counts = [len(words(s)) for s in segments_of(text, unit)]
        return bool(counts) and all((self.min_words or 0) <= n <= (self.max_words or n) for n in counts)


@dataclass(frozen=True)
class SegmentCount(Constraint):
    """The paragraph has ``n`` sentences, or the poem ``n`` lines."""

    KIND: ClassVar[str] = "segment_count"
    n: int

    @classmethod
    def parse(cls, task: str, unit: str) -> list[Constraint]:
        if unit == "sentence":
            return []
        noun = "lines?" if unit == "lines" else "sentences?"
        task = re.sub(r"\bone\s+(?:line|sentence)\s+(?:per|for\s+each|each|for\s+every)\b", "", task, flags=re.I)
        low, high = bounds_of(task, noun)
        n = count_of(task, noun) or low or high
        return [cls(n)] if n else []

    def apply(self, layout: Layout) -> None:
        layout.set_segments(self.n, "the count")

    def holds(self, text: str, unit: str) -> bool:
        return len(segments_of(text, unit)) == self.n


@dataclass(frozen=True)
class CharCount(Constraint):
    """The text (stripped) has exactly ``n`` characters, spaces and punctuation included."""

    KIND: ClassVar[str] = "char_count"
    n: int

    @classmethod
    def parse(cls, task: str, unit: str) -> list[Constraint]:
        n = exact_count_of(task, "characters?|chars?")
        return [cls(n)] if n else []

    def apply(self, layout: Layout) -> None:
        if layout.unit != "sentence":
            raise ValueError("an exact character count is supported for a single sentence only")
        layout.n_chars = self.n

    def holds(self, text: str, unit: str) -> bool:
        return len(text.strip()) == self.n


@dataclass(frozen=True)
class WordsAt(Constraint):
    """The word at each 1-based position (counted over the whole text) is given."""

    KIND: ClassVar[str] = "words_at"
    words_at: tuple[tuple[int, str], ...]

    PATTERNS: ClassVar[tuple[str, ...]] = (
        rf"\b{ORD}\s+word\s+(?:is|should be|must be|will be|being|be|=|:)?\s*{WORD}",
        rf"\bword\s+(?:number\s+|no\.\s*|#\s*)?{NUM}\s+(?:is|should be|must be|will be|being|=|:)\s*{WORD}",
    )

    @classmethod
    def parse(cls, task: str, unit: str) -> list[Constraint]:
        found: dict[int, str] = {}
        for i, pattern in enumerate(cls.PATTERNS):
            for m in re.finditer(pattern, task, re.I):
                pos = ordinal(m.group(1)) if i == 0 else number(m.group(1))
                if pos is not None and (m.group(2) or m.group(3).lower() not in STOP_WORDS):
                    found[pos] = first(m.group(2), m.group(3))
        for m in re.finditer(rf"{Q_OPEN}([A-Za-z][\w'’-]*){Q_CLOSE}\s+(?:is\s+|as\s+)?the\s+{ORD}\s+word\b", task, re.I):
            if (pos := ordinal(m.group(2))) is not None:
                found[pos] = m.group(1)
        return [cls(tuple(sorted(found.items())))] if found else []

    def params(self) -> dict[str, Any]:
        return {"words_at": {str(p): w for p, w in self.words_at}}

    def apply(self, layout: Layout) -> None:
        for pos, word in self.words_at:
            if pos in layout.words_at and not same_word(layout.words_at[pos], word):
                raise ValueError(f"word {pos} cannot be both {layout.words_at[pos]!r} and {word!r}")
            layout.words_at[pos] = word

    def holds(self, text: str, unit: str) -> bool:
        ws = words(text)
        return all(p <= len(ws) and same_word(ws[p - 1], w) for p, w in self.words_at)


LIST_SEP = r"(?:\s*,\s*(?:and\s+|or\s+|nor\s+)?|\s+(?:and|or|nor)\s+)"
LETTER_ITEM = rf"(?:{Q_OPEN}[A-Za-z]{Q_CLOSE}|[A-Za-z](?=\s*(?:[,.;!?]|$|\s(?:and|or|nor)\b)))"  # later items: "a" must not be an article
LETTER_LIST = rf"({Q_OPEN}?[A-Za-z]{Q_CLOSE}?(?![\w])(?:{LIST_SEP}{LETTER_ITEM})*)"


@dataclass(frozen=True)
class BannedLetters(Constraint):
    """None of ``letters`` appears anywhere in the text (either case)."""

    KIND: ClassVar[str] = "banned_letters"
    letters: str

    @classmethod
    def parse(cls, task: str, unit: str) -> list[Constraint]:
        found = ""
        negated = r"\b(?:without(?:\s+(?:using|the\s+use\s+of))?|no|never\s+us\w*|avoid\w*|omit\w*|exclud\w*|lacking|free\s+of|(?:do|does|must|should|may)\s*(?:n't|\s+not)\s+(?:use|contain|include|have)|don't\s+use)\s+(?:the\s+|any\s+)?"
        for m in re.finditer(negated + rf"(?:letters?|characters?)\s+{LETTER_LIST}", task, re.I):
            found += "".join(re.findall(r"[A-Za-z](?![A-Za-z])", re.sub(r"\b(?:and|or|nor)\b", "", m.group(1))))
        for m in re.finditer(rf"\b(?:letters?|characters?)\s+{Q_OPEN}?([A-Za-z]){Q_CLOSE}?\s+(?:never|does\s*n[o']t|doesn't|should\s*n[o']t|must\s*n[o']t|is\s*n[o']t|isn't|may\s*n[o']t)\b", task, re.I):
            found += m.group(1)
        for m in re.finditer(rf"\bno\s+{Q_OPEN}([A-Za-z]){Q_CLOSE}(?:s\b)?", task, re.I):
            found += m.group(1)
        letters = "".join(sorted(set(found.lower())))
        return [cls(letters)] if letters else []

    def values(self) -> set[Any]:
        return set(self.letters)

    def apply(self, layout: Layout) -> None:
        layout.banned_letters = "".join(sorted(set(layout.banned_letters + self.letters)))

    def holds(self, text: str, unit: str) -> bool:
        return not any(c in text.lower() for c in self.letters)


NOT_CUE = r"\b(?:without(?:\s+using)?|avoid\w*|never\s+us\w*|(?:do|does|must|should|may)\s*(?:n't|\s+not)\s+(?:use|contain|include|mention)|don't\s+(?:use|mention)|excluding|forbid\w*|ban\w*)\s+(?:the\s+|any\s+of\s+the\s+|using\s+the\s+)?(?:following\s+)?(?:words?|terms?)\b"


@dataclass(frozen=True)
class BannedWords(Constraint):
    """None of ``words`` appears as a word (case ignored)."""

    KIND: ClassVar[str] = "banned_words"
    words: tuple[str, ...]

    @classmethod
    def parse(cls, task: str, unit: str) -> list[Constraint]:
        found: list[str] = []
        for m in re.finditer(NOT_CUE, task, re.I):
            found += items_after(task[m.end():])
        return [cls(tuple(found))] if found else []

    def params(self) -> dict[str, Any]:
        return {"words": list(self.words)}

    def apply(self, layout: Layout) -> None:
        layout.banned_words += [w for w in self.words if w.lower() not in layout.banned_words]

    def holds(self, text: str, unit: str) -> bool:
        return not any(same_word(w, b) for w in words(text) for b in self.words)


@dataclass(frozen=True)
class RequiredWords(Constraint):
    """Every one of ``words`` appears as a word (case ignored)."""

    KIND: ClassVar[str] = "required_words"
    words: tuple[str, ...]

    CUES: ClassVar[tuple[str, ...]] = (
        r"\b(?:includ\w*|contain\w*|us(?:e|es|ing)|mention\w*|featur\w*|with)\s+(?:the\s+|all\s+of\s+the\s+|each\s+of\s+the\s+|both\s+)?(?:following\s+)?(?:words?|terms?)\b",
        rf"\b(?:includ\w*|contain\w*|mention\w*|featur\w*)\s+(?=(?:both\s+)?{Q_OPEN})(?:both\s+)?",
        rf"\b(?:includ\w*|contain\w*|mention\w*|featur\w*)\s+{BARE_LIST}",
        r"\bwords?\s+(?:are\s+)?included\s*:?",
    )

    @classmethod
    def parse(cls, task: str, unit: str) -> list[Constraint]:
        found: list[str] = []
        for cue in cls.CUES:
            for m in re.finditer(cue, task, re.I):
                before = task[: m.start()]
                if NEGATED.search(before) or re.search(rf"\b(?:ends?|ending|starts?|starting|begins?|beginning|opens?|finish\w*|{ORD[1:-1]})\s*$", before, re.I):
                    continue
                found += [w for w in items_after(task[m.end():]) if w.lower() not in (f.lower() for f in found)]
        return [cls(tuple(found))] if found else []

    def params(self) -> dict[str, Any]:
        return {"words": list(self.words)}

    def apply(self, layout: Layout) -> None:
        layout.required_words += [w for w in self.words if w not in layout.required_words]

    def holds(self, text: str, unit: str) -> bool:
        present = words(text)
        return all(any(same_word(w, p) for p in present) for w in self.words)


@dataclass(frozen=True)
class MaxWordLength(Constraint):
    """No word has more than ``max_chars`` characters."""

    KIND: ClassVar[str] = "max_word_length"
    max_chars: int

    @classmethod
    def parse(cls, task: str, unit: str) -> list[Constraint]:
        nouns = r"(?:characters?|letters?|chars?)"
        found = None
        for m in re.finditer(rf"\b(?:{AT_MOST}|{BELOW}|(?:longer|more|greater)\s+than|of\s+up\s+to)\s+{NUM}\s+{nouns}|\b{NUM}\s+{nouns}\s+or\s+(?:fewer|less|shorter)", task, re.I):
            if not re.search(r"\bwords?\b", task[max(0, m.start() - 40): m.start()], re.I):
                continue
            phrase = m.group(0).lower()
            n = number(m.group(1) or m.group(2))
            strict = re.match(BELOW, phrase) is not None
            found = n - 1 if strict else n
        return [cls(found)] if found else []

    def apply(self, layout: Layout) -> None:
        layout.max_word_chars = min(layout.max_word_chars or self.max_chars, self.max_chars)

    def holds(self, text: str, unit: str) -> bool:
        return all(len(w) <= self.max_chars for w in words(text))


@dataclass(frozen=True)
class SegmentStarts(Constraint):
    """Every sentence (or line) begins with the word ``word`` (a single sentence: its first word)."""

    KIND: ClassVar[str] = "segment_starts"
    word: str

    @classmethod
    def parse(cls, task: str, unit: str) -> list[Constraint]:
        verb = r"\b(?:begins?|starts?|opens?|beginning|starting|opening|begun|started)\s+with\s+(?:the\s+word\s+)?(?!(?:the\s+)?letters?\b|an?\s)"
        for m in re.finditer(verb + WORD, task, re.I):
            if re.search(r"\b(?:every|each|all|only)\s+(?:of\s+the\s+|single\s+)?words?\b(?:\s+(?:that|which|should|must|will|all|do|does|can|in\s+it))*\s*$", task[: m.start()], re.I):
                continue  # "every word starts with s": word_initial
            if unit == "lines" and not re.search(r"\b(?:each|every|all)\b[^.;]{0,40}$", task[: m.start()], re.I):
                continue
            word = first(m.group(1), m.group(2))
            if not (m.group(2) and word.lower() in STOP_WORDS):
                return [cls(word)]
        return []

    def apply(self, layout: Layout) -> None:
        layout.segment_first_word = self.word

    def holds(self, text: str, unit: str) -> bool:
        segs = segments_of(text, unit)
        return bool(segs) and all(words(s) and same_word(words(s)[0], self.word) for s in segs)


@dataclass(frozen=True)
class Acrostic(Constraint):
    """Line i starts with letter i of ``word`` (as many lines as letters)."""

    KIND: ClassVar[str] = "acrostic"
    word: str

    PATTERNS: ClassVar[tuple[str, ...]] = (
        rf"\bacrostic\b[^.;]*?\b(?:for|of|spelling|spells|on|using)\s+(?:out\s+)?(?:the\s+word\s+|the\s+name\s+)?{Q_OPEN}?([A-Za-z]{{2,14}})",
        rf"\blines?\s+(?:per|for\s+each|for\s+every)\s+letter\s+(?:of|in)\s+(?:the\s+word\s+|the\s+name\s+)?{Q_OPEN}?([A-Za-z]{{2,14}})",
        rf"\b(?:first|initial|starting|opening)\s+letters\s+(?:of\s+(?:the\s+|its\s+)?lines\s+)?spell\w*\s+(?:out\s+)?(?:the\s+word\s+)?{Q_OPEN}?([A-Za-z]{{2,14}})",
    )

    @classmethod
    def parse(cls, task: str, unit: str) -> list[Constraint]:
        for pattern in cls.PATTERNS:
            if m := re.search(pattern, task, re.I):
                return [cls(m.group(1).upper())]
        if m := re.search(rf"\blines?\b[^.;]{{0,30}}?\b(?:start|begin)\w*\s+with\s+the\s+letters\s+{LETTER_LIST}", task, re.I):
            letters = re.findall(r"[A-Za-z](?![A-Za-z])", re.sub(r"\b(?:and|or|nor)\b", "", m.group(1)))
            return [cls("".join(letters).upper())] if len(letters) > 1 else []
        return []

    def apply(self, layout: Layout) -> None:
        layout.set_segments(len(self.word), "the acrostic")
        layout.segment_first_letters = self.word

    def holds(self, text: str, unit: str) -> bool:
        segs = segments_of(text, unit)
        return len(segs) == len(self.word) and all(s[:1].upper() == c for s, c in zip(segs, self.word, strict=True))


@dataclass(frozen=True)
class WordInitial(Constraint):
    """Every word starts with ``letter`` (either case)."""

    KIND: ClassVar[str] = "word_initial"
    letter: str

    @classmethod
    def parse(cls, task: str, unit: str) -> list[Constraint]:
        m = re.search(rf"\b(?:every|each|all|only)\s+(?:of\s+the\s+|single\s+)?words?\b[^.;]{{0,24}}?\b(?:starts?|begins?|starting|beginning)\s+with\s+(?:the\s+letter\s+|an?\s+|the\s+)?{Q_OPEN}?([A-Za-z]){Q_CLOSE}?(?![A-Za-z])", task, re.I)
        return [cls(m.group(1).lower())] if m else []

    def apply(self, layout: Layout) -> None:
        layout.word_initial = self.letter

    def holds(self, text: str, unit: str) -> bool:
        ws = words(text)
        return bool(ws) and all(w[0].lower() == self.letter for w in ws)


@dataclass(frozen=True)
class LastWords(Constraint):
    """Sentence (or line) i ends with ``words[i]``; a single sentence ends with ``words[0]``."""

    KIND: ClassVar[str] = "last_words"
    words: tuple[str, ...]

    @classmethod
    def parse(cls, task: str, unit: str) -> list[Constraint]:
        found = [first(m.group(1), m.group(2)) for m in re.finditer(
            r"\b(?:ends?|ending|finish(?:es|ing)?)\s+(?:in|with|on)\s+(?:the\s+word\s+)?(?!an?\s|the\s)" + WORD, task, re.I)]
        if len(found) == 1 and unit != "sentence":  # "the first ends with 'a', the second with 'b'"
            m = re.search(r"\b(?:ends?|ending)\s+(?:in|with|on)\s+", task, re.I)
            rest = task[m.end():] if m else ""
            other = re.search(NOT_CUE + r"|\b(?:includ|contain|mention|featur)\w*", rest, re.I)
            found = re.findall(rf"{Q_OPEN}([A-Za-z][\w'’-]*){Q_CLOSE}", rest[: other.start()] if other else rest) or found
        for m in re.finditer(r"\b(?:last|final|closing)\s+words?\s+(?:is|are|should be|must be)\s+", task, re.I):
            found += items_after(task[m.end():])
        found = [w for w in found if w.lower() not in STOP_WORDS]
        return [cls(tuple(found))] if found else []

    def params(self) -> dict[str, Any]:
        return {"words": list(self.words)}

    def apply(self, layout: Layout) -> None:
        if layout.unit == "sentence" and len(self.words) > 1:
            raise ValueError(f"a single sentence cannot end with {len(self.words)} different words")
        if layout.unit != "sentence":
            layout.set_segments(len(self.words), "the last words")
        layout.segment_last_words = list(self.words)

    def holds(self, text: str, unit: str) -> bool:
        segs = segments_of(text, unit)
        return len(segs) == len(self.words) and all(
            words(s) and same_word(words(s)[-1], w) for s, w in zip(segs, self.words, strict=True))


PROSE_CONSTRAINTS: tuple[type[Constraint], ...] = (
    WordCount, SegmentWords, SegmentCount, CharCount, WordsAt, BannedLetters, BannedWords, RequiredWords,
    MaxWordLength, SegmentStarts, Acrostic, WordInitial, LastWords,
)
KINDS: dict[str, type[Constraint]] = {c.KIND: c for c in PROSE_CONSTRAINTS}


def unit_of(task: str) -> str:
    """``lines`` for poems and line-based tasks, ``paragraph`` for several sentences, else ``sentence``."""
    if re.search(r"\b(?:poem|acrostic|lines?\b|verses?|stanza)", task, re.I):
        return "lines"
    if re.search(r"\bparagraph|\bsentences\b|\beach\s+sentence\b|\bevery\s+sentence\b|\bshort\s+(?:text|story)\b", task, re.I):
        return "paragraph"
    return "sentence"


def parse_prose(task: str) -> tuple[str, list[Constraint]]:
    """The unit of ``task`` and every prose constraint it states (empty when none)."""
    unit = unit_of(task)
    found: list[Constraint] = []
    for cls in PROSE_CONSTRAINTS:
        found += cls.parse(task, unit)
    exact = next((c.max_words for c in found if c.KIND == "word_count" and c.min_words == c.max_words), None)  # type: ignore[attr-defined]
    last = next((c for c in found if c.KIND == "last_words"), None)
    if unit == "sentence" and exact and last is not None:  # "... 8 words ... the last word is 'home'": word 8
        at = next((c for c in found if c.KIND == "words_at"), WordsAt(()))
        merged = WordsAt(tuple(sorted((dict(at.words_at) | {exact: last.words[0]}).items())))  # type: ignore[attr-defined]
        found = [c for c in found if c.KIND not in ("last_words", "words_at")] + [merged]
    implied = {len(c.word) for c in found if c.KIND == "acrostic"}  # type: ignore[attr-defined]
    implied |= {len(c.words) for c in found if c.KIND == "last_words" and unit != "sentence"}  # type: ignore[attr-defined]
    found = [c for c in found if c.KIND != "segment_count" or c.n not in implied]  # type: ignore[attr-defined]
    return unit, found


def constraint_from_dict(data: dict[str, Any]) -> Constraint:
    """Rebuild a constraint from ``to_dict()`` output (ValueError naming an unknown kind)."""
    data = dict(data)
    kind = data.pop("kind", None)
    if kind not in KINDS:
        raise ValueError(f"unknown constraint kind {kind!r}; the vocabulary has {', '.join(KINDS)}")
    if kind == "words_at":
        return WordsAt(tuple(sorted((int(k), v) for k, v in data["words_at"].items())))
    if "words" in data:
        data["words"] = tuple(data["words"])
    return KINDS[kind](**data)


UNSUPPORTED: dict[str, str] = {
    r"\brhym\w*": "rhyme",
    r"\bsyllabl\w*|\bhaikus?\b": "syllable counts",
    r"\bpalindrom\w*": "palindromes",
    r"\balliterat\w*": "alliteration",
    r"\ball\s+caps\b|\bupper\s*-?case\b|\blower\s*-?case\b|\bcapital(?:ised|ized)?\s+letters\b": "letter case",
    r"\b(?:in|into)\s+(?:French|Spanish|German|Italian|Chinese|Japanese|Portuguese|Russian|Dutch|Latin)\b": "another language",
    r"\banagrams?\b": "anagrams",
    r"\bvowels?\b|\bconsonants?\b": "vowel or consonant counts",
    r"\balphabetical\w*": "alphabetical order",
    r"\bemojis?\b|\bhashtags?\b": "emoji or hashtags",
    r"\bquestion\s+marks?\b|\bexclamation\s+(?:marks?|points?)\b|\bsemicolons?\b": "punctuation requirements",
    r"\bsonnet\b|\blimerick\b|\biambic\b": "a poetic metre",
    r"\bbullet\w*|\bmarkdown\b|\bbold\b|\bitalics?\b": "formatting",
    r"\bparagraphs\b": "several paragraphs",
    r"\btimes\b(?=[^.]*\b(?:word|letter)\b)|\bappears?\s+(?:exactly\s+)?(?:once|twice|\w+\s+times)\b": "counts of a word's occurrences",
}


def unsupported(task: str) -> list[str]:
    """Names of constraints ``task`` states that lie outside the vocabulary."""
    return [name for pattern, name in UNSUPPORTED.items() if re.search(pattern, task, re.I)]


