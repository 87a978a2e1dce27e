"""Training questions: verifiable questions with exact answers, generated or read from a file.

A `Task` holds training and held-out `Question`s and knows how to read an answer out of a
completion (``extract``) and whether it is right (``is_correct``); answers are compared in the
canonical form of `selfsteer.smc.scaling.answers` ("07", "7.0" and " 7." all become "7", "1,000"
becomes "1000"). Built-in tasks are generated from a seed:

- ``addition``: "What is 12 + 7?" with operands in [0, max_operand].
- ``counting``: "How many items are in this list: fig, pear, plum?" with 1..min(max_operand, 12) items.
- ``facts``: an invented fact as *context* ("Zorbin's favourite colour is teal.") and a question
  about it; for the prompt-emulating meta-learning objective, which learns from the context.
- ``jsonl``: rows ``{"prompt": ..., "answer": ...}`` (optional ``"id"``, ``"context"``) from a file.

Answers are read from an ``<answer>...</answer>`` tag when one is present (the last one wins),
else from the whole text: the last number for numeric tasks, the first line otherwise.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from selfsteer.smc.scaling.answers import ANSWER_TAG, NUMBER, canonical_answer, last_number

from .config import TaskSettings
from .schema import ConfigError

WORDS = ("apple", "pear", "fig", "plum", "lime", "kiwi", "date", "grape", "melon", "lemon", "peach", "mango")
NAME_PARTS = ("zor", "bli", "ka", "mun", "tef", "rao", "vel", "dri", "qua", "nos", "pim", "lor")
ATTRIBUTES = (
    ("favourite colour", ("teal", "amber", "violet", "crimson", "olive", "silver")),
    ("home town", ("Oslo", "Lima", "Perth", "Quito", "Accra", "Hanoi")),
    ("pet", ("ferret", "parrot", "tortoise", "hamster", "iguana", "goldfish")),
)


@dataclass(frozen=True)
class Question:
    """One prompt with its gold answer (and, for meta-learning, a context to learn from)."""

    id: str
    prompt: str
    answer: str
    context: str | None = None


@dataclass(frozen=True)
class Task:
    """Questions plus the rules for reading and checking answers."""

    name: str
    train: tuple[Question, ...]
    eval: tuple[Question, ...]
    numeric: bool = True

    def extract(self, text: str) -> str | None:
        """The answer in ``text`` (tag, else the whole text; the last number if numeric, else the
        first line), canonical; None if absent."""
        tags = ANSWER_TAG.findall(text)
        body = tags[-1] if tags else text
        if self.numeric:
            return last_number(body)
        return canonical_answer(body if tags else body.strip().split("\n", 1)[0])

    def is_correct(self, answer: str | None, question: Question) -> bool:
        return answer is not None and answer == canonical_answer(question.answer)


def addition_questions(rng: np.random.Generator, n: int, max_operand: int) -> list[Question]:
    pairs = [(a, b) for a in range(max_operand + 1) for b in range(max_operand + 1)]
    if n > len(pairs):
        raise ConfigError(
            f"task addition with max_operand={max_operand} has only {len(pairs)} distinct questions but "
            f"n_train + n_eval = {n}; raise task.max_operand or lower the counts"
        )
    order = rng.permutation(len(pairs))[:n]
    return [Question(f"add-{pairs[i][0]}-{pairs[i][1]}", f"What is {pairs[i][0]} + {pairs[i][1]}?", str(sum(pairs[i])))
            for i in order]


def counting_questions(rng: np.random.Generator, n: int, max_operand: int) -> list[Question]:
    top = max(1, min(max_operand, len(WORDS)))
    out = []
    for i in range(n):
        k = int(rng.integers(1, top + 1))
        items = [WORDS[j] for j in rng.choice(len(WORDS), size=k, replace=False)]
        out.append(Question(f"count-{i}", f"How many items are in this list: {', '.join(items)}?", str(k)))
    return out


def fact_questions(rng: np.random.Generator, n: int) -> list[Question]:
    out = []
    for i in range(n):
        name = "".join(NAME_PARTS[j] for j in rng.choice(len(NAME_PARTS), size=2, replace=False)).capitalize()
        attribute, values = ATTRIBUTES[int(rng.integers(len(ATTRIBUTES)))]
        value = values[int(rng.integers(len(values)))]
        out.append(Question(f"fact-{i}", f"What is {name}'s {attribute}?", value,
                            context=f"{name}'s {attribute} is {value}."))
    return out


def jsonl_questions(path: Path, n: int) -> list[Question]:
    if not path.is_file():
        raise ConfigError(f"task.path: no JSONL file at {path}")
    out = []
    for line_no, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}:{line_no}: not valid JSON ({e.msg})") from e
        if not isinstance(row, dict) or "prompt" not in row or "answer" not in row:
            raise ConfigError(f"{path}:{line_no}: each row needs \"prompt\" and \"answer\" fields")
        out.append(Question(str(row.get("id", f"q{line_no}")), str(row["prompt"]), str(row["answer"]),
                            row.get("context")))
        if len(out) >= n:
            break
    if not out:
        raise ConfigError(f"{path} holds no questions")
    return out


BUILT_IN = ("addition", "counting", "facts", "jsonl")


def load_task(settings: TaskSettings, seed: int) -> Task:
    """The task named in ``settings``; training and held-out questions never overlap."""
    rng = np.random.default_rng([seed, 7])
    n = settings.n_train + settings.n_eval
    if settings.name == "addition":
        qs, numeric = addition_questions(rng, n, settings.max_operand), True
    elif settings.name == "counting":
        qs, numeric = counting_questions(rng, n, settings.max_operand), True
    elif settings.name == "facts":
        qs, numeric = fact_questions(rng, n), False
    elif settings.name == "jsonl":
        qs = jsonl_questions(Path(settings.path), n)
        numeric = all(NUMBER.fullmatch(canonical_answer(q.answer) or "") for q in qs)
    else:
        raise ConfigError(f"task.name: unknown task {settings.name!r}; choose one of {list(BUILT_IN)}")
    n_eval = min(settings.n_eval, max(len(qs) - 1, 0))
    return Task(settings.name, tuple(qs[n_eval:]), tuple(qs[:n_eval]), numeric)

