"""Benchmark tasks: one description every system runs, and one validity checker they all share.

A `Task` fixes the prompt (one user message, put through the model's chat template), the number
of particles (sequences), the token budget, the constraint and how a sequence ends:

- ``no_e``: text without the letter "e". Every token must avoid "e"/"E"; a sequence ends at EOS,
  at ``max_tokens`` or, for a sentence (``ends_at_sentence``), after sentence-final punctuation
  (".", "!", "?"). Two tasks use it: a short sentence and a paragraph.
- ``regex``: text that fully matches ``pattern`` (a one-line JSON record); a sequence ends at EOS,
  which the constraint allows only after a full match, or at ``max_tokens``.
- ``free``: no constraint, EOS disallowed, so every sequence is exactly ``max_tokens`` tokens long
  (the throughput task: equal work for every system).

`is_valid(task, text)` is the single checker used to count valid outputs for every system.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

NO_E_PROMPT = "Write one short sentence about a dog without using the letter e."
NO_E_PARAGRAPH_PROMPT = "Write a short paragraph about a dog and its owner without using the letter e."
RECORD_PROMPT = "Describe a dog as a one-line JSON object with the keys name, breed and age."
RECORD_PATTERN = r'\{"name": "[A-Z][a-z]{1,11}", "breed": "[A-Za-z ]{1,24}", "age": [0-9]{1,2}\}'
FREE_PROMPT = "Tell me a story about a lighthouse keeper."
SENTENCE_END = (".", "!", "?")
CONSTRAINTS = ("no_e", "regex", "free")

# A fixed paragraph repeated (with numbered sections) to build long shared prompts.
_PARAGRAPH = (
    "The harbour town woke slowly. Fishing boats rocked against the pier while gulls argued over "
    "scraps, and the baker opened his shutters to the smell of bread and salt. Along the cliff "
    "path an old keeper climbed to the lighthouse, counting the steps as he had done for forty "
    "years, and wrote the weather, the ships and the tides into a leather logbook."
)


@dataclass(frozen=True)
class Task:
    """What to generate: ``n_particles`` sequences of at most ``max_tokens`` tokens after ``prompt``.

    ``constraint`` is "no_e", "regex" (with ``pattern``) or "free" (see the module docstring);
    ``ends_at_sentence`` also ends a sequence after sentence-final punctuation; ``name`` labels
    the task in reports.
    """

    name: str
    prompt: str
    n_particles: int
    max_tokens: int
    constraint: str
    pattern: str | None = None
    ends_at_sentence: bool = False

    def __post_init__(self):
        if self.constraint not in CONSTRAINTS:
            raise ValueError(f"unknown constraint {self.constraint!r}; choose one of {list(CONSTRAINTS)}")
        if self.n_particles < 1 or self.max_tokens < 1:
            raise ValueError(f"n_particles and max_tokens must be >= 1, got {self.n_particles}, {self.max_tokens}")
        if (self.constraint == "regex") != (self.pattern is not None):
            raise ValueError("a regex task needs a pattern, and only a regex task takes one")

    @property
    def allows_eos(self) -> bool:
        return self.constraint != "free"

    @property
    def constrained(self) -> bool:
        return self.constraint != "free"

    def resized(self, *, n_particles: int | None = None, max_tokens: int | None = None) -> Task:
        return replace(
            self,
            n_particles=self.n_particles if n_particles is None else n_particles,
            max_tokens=self.max_tokens if max_tokens is None else max_tokens,
        )

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "n_particles": self.n_particles,
            "max_tokens": self.max_tokens,
            "constraint": self.constraint,
            "pattern": self.pattern,
            "ends_at_sentence": self.ends_at_sentence,
            "prompt_chars": len(self.prompt),
            "prompt": self.prompt if len(self.prompt) <= 200 else self.prompt[:200] + "...",
        }


def no_e_task(n_particles: int = 8, max_tokens: int = 40) -> Task:
    """A sentence without "e": ends at EOS, sentence-final punctuation or ``max_tokens``."""
    return Task("no_e", NO_E_PROMPT, n_particles, max_tokens, "no_e", ends_at_sentence=True)


def no_e_paragraph_task(n_particles: int = 8, max_tokens: int = 96) -> Task:
    """A paragraph without "e": ends at EOS or ``max_tokens`` (sentence ends do not stop it)."""
    return Task("no_e_paragraph", NO_E_PARAGRAPH_PROMPT, n_particles, max_tokens, "no_e")


def record_task(n_particles: int = 8, max_tokens: int = 48) -> Task:
    """A one-line JSON record matching `RECORD_PATTERN`: ends at EOS (after a full match) or ``max_tokens``."""
    return Task("json_record", RECORD_PROMPT, n_particles, max_tokens, "regex", pattern=RECORD_PATTERN)


def free_task(n_particles: int = 16, max_tokens: int = 64, prompt: str = FREE_PROMPT, name: str = "free") -> Task:
    return Task(name, prompt, n_particles, max_tokens, "free")


def long_prompt(count_tokens, min_tokens: int) -> str:
    """A prompt of at least ``min_tokens`` tokens (``count_tokens(text) -> int`` measures it)."""
    sections = []
    text = ""
    while count_tokens(text) < min_tokens:
        sections.append(f"Section {len(sections) + 1}. {_PARAGRAPH}")
        text = "\n\n".join(sections) + "\n\nContinue the story of the keeper."
    return text


def is_sentence_end(text: str) -> bool:
    return text.rstrip().endswith(SENTENCE_END)


def is_valid(task: Task, text: str | None) -> bool:
    """The shared checker: does ``text`` (a finished output, None if the system gave none) satisfy ``task``?"""
    if text is None:
        return False
    if task.constraint == "no_e":
        return bool(text.strip()) and "e" not in text.lower()
    if task.constraint == "regex":
        return re.fullmatch(task.pattern, text.strip()) is not None
    return True
