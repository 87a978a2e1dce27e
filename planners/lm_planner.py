"""`LMPlanner`: a planner LM that writes programs, behind any chat-completion function.

``LMPlanner(chat, name=...)`` builds the prompt (`selfsteer.planners.prompt`), asks ``chat``
(``messages -> completion text``: an OpenAI-compatible endpoint, a local model, or a test double)
for a completion, and extracts the program with `extract_program`. It remembers its last
completion per task, so a retry shows the planner its own failed program with the error.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Sequence

from .examples import Example
from .plan import Plan
from .prompt import build_messages
from .validate import parse_python

Chat = Callable[[list[dict]], str]
FENCE = re.compile(r"```[ \t]*(?:python|py|python3)?[ \t]*\n(.*?)(?:\n[ \t]*```|\Z)", re.DOTALL | re.IGNORECASE)
PROGRAM_BASES = ("TextModel", "LibraryProgram")


def extract_program(completion: str) -> str:
    """The program source in a completion: the first fenced block that defines a class, else the
    first fenced block, else the whole text (an unclosed final block counts up to the end)."""
    blocks = [b.strip("\n") for b in FENCE.findall(completion or "")]
    for block in blocks:
        if re.search(r"^class\s+\w+", block, re.MULTILINE):
            return block + "\n"
    if blocks:
        return blocks[0] + "\n"
    return (completion or "").strip() + "\n"


def find_class_name(source: str) -> str:
    """The name of the first class deriving from TextModel/LibraryProgram ("" if none parses)."""
    try:
        tree = parse_python(source)
    except (SyntaxError, ValueError):
        return ""
    classes = [n for n in tree.body if isinstance(n, ast.ClassDef)]
    for node in classes:
        if any(isinstance(b, ast.Name) and b.id in PROGRAM_BASES for b in node.bases):
            return node.name
    return classes[0].name if classes else ""


class LMPlanner:
    """A planner that asks a chat LM for a program (see the module docstring).

    Args:
        chat: ``messages -> completion text``; raises `PlannerError` when the LM is unreachable.
        name: the planner's name in the program cache (e.g. "openai:gpt-4o").
        exclude_family: leave this library family out of the few-shot examples (evaluation).
        examples: fixed few-shot examples instead of the library's.
        n_examples: how many library examples to show.
        compact: document only the library names the examples use (see `build_messages`).
    """

    def __init__(
        self,
        chat: Chat,
        *,
        name: str = "lm",
        exclude_family: str | None = None,
        examples: Sequence[Example] | None = None,
        n_examples: int = 3,
        compact: bool = False,
    ):
        self.chat = chat
        self.name = name
        self.exclude_family = exclude_family
        self.examples = examples
        self.n_examples = n_examples
        self.compact = compact
        self._last: dict[str, str] = {}

    def messages(self, task: str, *, feedback: str | None = None) -> list[dict]:
        return build_messages(
            task, feedback=feedback, previous=self._last.get(task) if feedback else None,
            exclude_family=self.exclude_family, examples=self.examples, n_examples=self.n_examples,
            compact=self.compact,
        )

    def plan(self, task: str, *, feedback: str | None = None) -> Plan:
        messages = self.messages(task, feedback=feedback)
        completion = self.chat(messages)
        self._last[task] = completion
        source = extract_program(completion)
        return Plan(source=source, class_name=find_class_name(source), origin="lm",
                    prompt=messages, completion=completion)
