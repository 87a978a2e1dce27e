"""The library of hand-written programs: `ProgramSpec` and the registry.

Every library program is a `TextModel` subclass built as ``cls(lm, task, **params)`` and carries
a class attribute ``SPEC = ProgramSpec(...)``: its name, family, a one-paragraph description (what
tasks it solves), the JSON schema of its parameters and a few example tasks with the parameters
they imply. Planners retrieve programs by description and examples and fill in the parameters.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from selfsteer.smc import LanguageModel, TextModel

FAMILY_MODULES = ("collie_sentences", "collie_paragraphs", "puzzles", "structured", "compose")


@dataclass(frozen=True)
class ProgramSpec:
    """What a planner needs to know about one library program.

    Attributes:
        name: unique snake_case name, e.g. ``"exact_word_count"``.
        family: the module's family, e.g. ``"collie_sentences"``.
        description: the tasks this program solves, in plain words (retrieval embeds it).
        params_schema: a JSON schema (``type: object``) of the keyword parameters.
        examples: ``(task_text, params)`` pairs; each params dict satisfies the schema.
        extract: the program's extraction rule: ``extract(task) -> params`` for a task in plain
            English (`phrasing.ExtractionError` naming what it cannot find).
        covers: the kinds of the constraint vocabulary (`programs.vocabulary`) its parameters
            express; the offline planner composes a program when a task states any other kind.
    """

    name: str
    family: str
    description: str
    params_schema: dict[str, Any]
    examples: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    covers: frozenset[str] = frozenset()
    extract: Callable[[str], dict[str, Any]] | None = None

    def validate(self, params: dict[str, Any]) -> dict[str, Any]:
        """Return ``params`` if they satisfy the schema, else raise ValueError naming the problem."""
        try:
            jsonschema.validate(params, self.params_schema)
        except jsonschema.ValidationError as e:
            where = "/".join(str(p) for p in e.absolute_path) or "(top level)"
            raise ValueError(
                f"bad parameters for program {self.name!r} at {where}: {e.message}. "
                f"Expected parameters: {describe_params(self.params_schema)}"
            ) from None
        return params


def describe_params(schema: dict[str, Any]) -> str:
    """A one-line summary of a params schema: ``name (type, required), ...``."""
    required = set(schema.get("required", []))
    parts = []
    for name, prop in schema.get("properties", {}).items():
        kind = prop.get("type", "any")
        parts.append(f"{name} ({kind}{', required' if name in required else ''})")
    return ", ".join(parts) or "none"


def all_programs() -> list[type[TextModel]]:
    """Every library program class, in family order (modules that fail to import are an error)."""
    found: list[type[TextModel]] = []
    for module_name in FAMILY_MODULES:
        try:
            module = importlib.import_module(f"selfsteer.programs.{module_name}")
        except ModuleNotFoundError as e:
            if e.name == f"selfsteer.programs.{module_name}":
                continue  # family not written yet
            raise
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, TextModel) and "SPEC" in vars(value):
                found.append(value)
    names = [cls.SPEC.name for cls in found]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise RuntimeError(f"two library programs share the name(s) {sorted(duplicates)}")
    return found


def get_program(name: str) -> type[TextModel]:
    """The library program called ``name`` (ValueError listing the known names otherwise)."""
    for cls in all_programs():
        if cls.SPEC.name == name:
            return cls
    known = ", ".join(sorted(cls.SPEC.name for cls in all_programs()))
    raise ValueError(f"no library program named {name!r}; known programs: {known}")


def build_program(lm: LanguageModel, task: str, name: str, params: dict[str, Any]) -> TextModel:
    """Instantiate library program ``name`` for ``task`` after validating ``params``."""
    cls = get_program(name)
    return cls(lm, task, **cls.SPEC.validate(params))
