"""Benchmark tasks: one description every system runs, and one validity checker they all share.

A `Task` fixes the prompt (one user message, put through the model's chat template), the number
of particles (sequences), the token budget, the constraint and how a sequence ends:

- ``no_e``: a sentence without the letter "e". Every token must avoid "e"/"E"; a sequence ends at
  EOS, after sentence-final punctuation (".", "!", "?") or at ``max_tokens``.
- ``free``: no constraint, EOS disallowed, so every sequence is exactly ``max_tokens`` tokens long
  (the throughput task: equal work for every system).

`is_valid(task, text)` is the single checker used to count valid outputs for every system.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

NO_E_PROMPT = "Write one short sentence about a dog without using the letter e."
FREE_PROMPT = "Tell me a story about a lighthouse keeper."
SENTENCE_END = (".", "!", "?")
CONSTRAINTS = ("no_e", "free")

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

    ``constraint`` is "no_e" or "free" (see the module docstring); ``name`` labels the task in
    reports.
    """

    name: str
    prompt: str
    n_particles: int
    max_tokens: int
    constraint: str

    def __post_init__(self):
        if self.constraint not in CONSTRAINTS:
            raise ValueError(f"unknown constraint {self.constraint!r}; choose one of {list(CONSTRAINTS)}")
        if self.n_particles < 1 or self.max_tokens < 1:
            raise ValueError(f"n_particles and max_tokens must be >= 1, got {self.n_particles}, {self.max_tokens}")

    @property
    def allows_eos(self) -> bool:
        return self.constraint != "free"

    @property
    def stops_at_sentence_end(self) -> bool:
        return self.constraint == "no_e"

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
            "prompt_chars": len(self.prompt),
            "prompt": self.prompt if len(self.prompt) <= 200 else self.prompt[:200] + "...",
        }


def no_e_task(n_particles: int = 8, max_tokens: int = 40) -> Task:
    return Task("no_e", NO_E_PROMPT, n_particles, max_tokens, "no_e")


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
    return True
