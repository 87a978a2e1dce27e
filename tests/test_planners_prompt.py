"""The planner prompt is generated from the live code: docstrings, signatures, the validator's
allow-lists; few-shot examples leave out the task's family; a retry carries the error."""

from __future__ import annotations

import ast
import asyncio
import inspect
import json
import re

import pytest

from selfsteer.planners.allowlist import SAFE_BUILTINS, allowed_imports
from selfsteer.planners.examples import Example, as_planner_program, library_programs, pick_examples
from selfsteer.planners.prompt import (
    CONSTRAINT_DIALECTS,
    api_reference,
    build_messages,
    rules,
    system_prompt,
)
from selfsteer.planners.validate import validate_program
from selfsteer.smc import JsonSchema, Model, Regex, TextModel
from selfsteer.smc.lm.vocab import TokenMasks


def test_system_prompt_embeds_live_docstrings_and_signatures():
    text = system_prompt()
    for owner, name in [(TextModel, "extend"), (TextModel, "next_word"), (TextModel, "end"), (Model, "observe"),
                        (Model, "condition"), (TokenMasks, "without")]:
        assert inspect.getdoc(getattr(owner, name)).replace("\n", "\n    ") in text, name  # indented under its signature
    assert "async def extend(self, stop: str | Sequence[str] = (), *, max_tokens: int = 32" in text
    assert inspect.getdoc(TokenMasks) in text


def test_rules_come_from_the_validator():
    text = system_prompt()
    for module, names in allowed_imports().items():
        assert f"- from {module} import {', '.join(sorted(names))}" in text
    assert ", ".join(sorted(SAFE_BUILTINS)) in text


def test_messages_order_task_last_and_feedback_on_retry():
    ex = [Example("Say a.", "fam", "p", "class P: pass\n")]
    first = build_messages("Write a haiku.", examples=ex)
    assert [m["role"] for m in first] == ["system", "user", "assistant", "user"]
    assert first[1]["content"].startswith("Task: Say a.") and "```python\nclass P: pass\n```" == first[2]["content"]
    assert first[-1]["content"].startswith("Task: Write a haiku.")
    retry = build_messages("Write a haiku.", examples=ex, feedback="line 3: syntax error", previous="old")
    assert retry[:-2] == first
    assert retry[-2] == {"role": "assistant", "content": "old"} and "line 3: syntax error" in retry[-1]["content"]


def test_few_shot_leaves_out_the_task_family():
    programs = library_programs()
    if not programs:
        pytest.skip("the program library is not installed yet")
    families = {cls.SPEC.family for cls in programs}
    for family in families:
        picked = pick_examples("Write a sentence with exactly 12 words.", exclude_family=family, k=10)
        assert picked and all(e.family != family for e in picked)
    nearest = pick_examples("Write a sentence with exactly 12 words.", k=1)[0]
    assert nearest.program == "sentence_word_count"


# ----- the prompt teaches everything the examples use --------------------------------------------
STDLIB_TYPES = (str, list, dict, set, tuple, int, float, frozenset, bytes, re.Pattern, re.Match)


def _definitions(tree: ast.Module) -> set[str]:
    """Names the program defines itself: classes, functions, arguments, variables, attributes it assigns."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(node.name)
        elif isinstance(node, ast.arg):
            out.add(node.arg)
        elif isinstance(node, (ast.Name, ast.Attribute)) and isinstance(node.ctx, ast.Store):
            out.add(node.id if isinstance(node, ast.Name) else node.attr)
    return out


def used_library_names(source: str) -> set[str]:
    """Names an example takes from selfsteer: what it imports from selfsteer and every attribute it
    reads that it does not define itself, that no built-in type has and that is not a stdlib module's."""
    tree = ast.parse(source)
    own = _definitions(tree)
    stdlib_modules = {a.asname or a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    used = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module.startswith("selfsteer"):
            used |= {a.name for a in node.names}
        elif isinstance(node, ast.Attribute) and node.attr not in own:
            if isinstance(node.value, ast.Name) and node.value.id in stdlib_modules:
                continue
            if not any(hasattr(t, node.attr) for t in STDLIB_TYPES):
                used.add(node.attr)
    return used


def documented(name: str, reference: str) -> bool:
    """``name`` has an entry in the reference: a def/class/property, a constant, a field or
    argument, or a name the docs mark up (``name``, `name`, self.name)."""
    n = re.escape(name)
    return re.search(rf"(?:def|class|property) {n}\b|^{n} = |``(?:self\.)?{n}\b|`{n}`|\bself\.(?:lm\.)?{n}\b|"
                     rf"[(, ]{n}: |^\s*{n}: ", reference, re.MULTILINE) is not None


def all_examples() -> list[Example]:
    programs = library_programs()
    if not programs:
        pytest.skip("the program library is not installed yet")
    return [Example(c.SPEC.examples[0][0], c.SPEC.family, c.SPEC.name, as_planner_program(c, c.SPEC.examples[0][1]))
            for c in programs]


def test_every_name_an_example_uses_is_documented_in_the_api_reference():
    reference = api_reference()
    undocumented = {ex.program: sorted(n for n in used_library_names(ex.source) if not documented(n, reference))
                    for ex in all_examples()}
    assert not {k: v for k, v in undocumented.items() if v}, undocumented


def test_the_documentation_check_catches_an_undocumented_name():
    source = ("from selfsteer.programs.base import LibraryProgram\n\nclass P(LibraryProgram):\n"
              "    async def step(self):\n        self.secret_helper()\n        self.note('x')\n")
    assert used_library_names(source) == {"LibraryProgram", "secret_helper", "note"}
    assert [n for n in sorted(used_library_names(source)) if not documented(n, api_reference())] == ["secret_helper"]


def test_examples_use_only_import_forms_the_rules_allow():
    rules_text = rules()
    for ex in all_examples():
        validate_program(ex.source)
        for node in ast.walk(ast.parse(ex.source)):
            if isinstance(node, ast.ImportFrom):
                assert f"- from {node.module} import " in rules_text, (ex.program, node.module)
                assert {a.name for a in node.names} <= allowed_imports()[node.module], ex.program
            elif isinstance(node, ast.Import):
                for alias in node.names:  # a whole module: only a standard-library one the rules list
                    assert not alias.name.startswith("selfsteer") and f"- from {alias.name} import " in rules_text
                    assert "may also be imported whole (`import re`)" in rules_text, ex.program


def test_the_prompt_gives_guidance_on_priors_defaults_and_conflicts():
    text = system_prompt()
    assert "task-agnostic" not in text  # the prior keeps the task's topic
    for heading in ("with the constraint phrasing removed", "Defaults where the task is silent", "Conflicting constraints"):
        assert heading in text


# ----- the stated regex dialect and JSON-schema keywords hold for the live code ------------------
def _full_match(spec, text: str) -> bool:
    return asyncio.run(spec.byte_potential.complete(list(text.encode()))) == 0


def _viable_prefix(spec, text: str) -> bool:
    return asyncio.run(spec.byte_potential.prefix(list(text.encode()))) == 0


@pytest.mark.parametrize(("pattern", "match", "other"), [
    (r"\d{3}", "123", "12a"), (r"\w+", "ab_1", "a b"), (r"\s", " ", "a"), (r"[A-Z][a-z]*", "Hi", "hi"),
    (r"[^x]+", "abc", "axc"), (r"(?:ab)+", "abab", "aba"), (r"(a|b)c", "bc", "cc"), (r"colou?r", "color", "colr"),
    (r"a{2,}", "aaa", "a"), (r"a{1,2}b*", "aab", "aaab"), (r"a.c", "abc", "a\nc"), (r"(?i)ab", "AB", "ac"),
])
def test_regex_accepts_the_syntax_the_prompt_states(pattern, match, other):
    spec = Regex(pattern)
    assert _full_match(spec, match) and not _full_match(spec, other)


@pytest.mark.parametrize("pattern", [r"^ab", r"ab$", r"\bab", r"(a)\1"])
def test_regex_rejects_what_the_prompt_says_it_rejects(pattern):
    with pytest.raises(ValueError, match="invalid regex"):
        Regex(pattern)


KEYWORD_CASES = {  # keyword: (schema, a valid document, an invalid one)
    "type": ({"type": "integer"}, "1", '"a"'),
    "properties": ({"type": "object", "properties": {"a": {"type": "integer"}}}, '{"a":1}', '{"a":"x"}'),
    "required": ({"type": "object", "required": ["a"]}, '{"a":1}', '{"b":1}'),
    "additionalProperties": ({"type": "object", "properties": {"a": {}}, "additionalProperties": False}, '{"a":1}', '{"b":1}'),
    "items": ({"type": "array", "items": {"type": "integer"}}, "[1]", '["a"]'),
    "enum": ({"enum": ["x", "y"]}, '"x"', '"z"'),
    "const": ({"const": 1}, "1", "2"),
    "anyOf": ({"anyOf": [{"type": "integer"}, {"type": "null"}]}, "null", '"s"'),
    "oneOf": ({"oneOf": [{"type": "integer"}, {"type": "string"}]}, "1", "null"),
    "allOf": ({"allOf": [{"type": "integer"}, {"minimum": 2}]}, "3", "1"),
    "not": ({"not": {"type": "integer"}}, '"a"', "1"),
    "$ref": ({"definitions": {"n": {"type": "integer"}}, "$ref": "#/definitions/n"}, "1", '"a"'),
    "minimum": ({"type": "integer", "minimum": 3}, "5", "2"),
    "maximum": ({"type": "number", "maximum": 3}, "2.5", "4"),
    "exclusiveMinimum": ({"type": "integer", "exclusiveMinimum": 3}, "4", "3"),
    "exclusiveMaximum": ({"type": "integer", "exclusiveMaximum": 3}, "2", "3"),
    "multipleOf": ({"type": "integer", "multipleOf": 5}, "10", "7"),
    "minLength": ({"type": "string", "minLength": 3}, '"abc"', '"ab"'),
    "maxLength": ({"type": "string", "maxLength": 3}, '"abc"', '"abcd"'),
    "pattern": ({"type": "string", "pattern": "^[a-z]+$"}, '"abc"', '"aB"'),
    "format": ({"type": "string", "format": "email"}, '"a@b.co"', '"nope"'),
    "minItems": ({"type": "array", "minItems": 2}, "[1,2]", "[1]"),
    "maxItems": ({"type": "array", "maxItems": 1}, "[1]", "[1,2]"),
    "uniqueItems": ({"type": "array", "uniqueItems": True}, "[1,2]", "[1,1]"),
    "minProperties": ({"type": "object", "minProperties": 1}, '{"a":1}', "{}"),
    "maxProperties": ({"type": "object", "maxProperties": 1}, '{"a":1}', '{"a":1,"b":2}'),
}


def _stated_keywords(kind: str) -> list[str]:
    """The keywords the prompt lists in its parenthesis after ``kind``."""
    text = " ".join(CONSTRAINT_DIALECTS.split())
    start = text.index(kind)
    return [k.strip() for k in text[text.index("(", start) + 1: text.index(")", start)].split(",")]


def test_json_schema_enforces_every_keyword_the_prompt_lists():
    stated = _stated_keywords("every JSON Schema draft-7 keyword")
    assert set(stated) == set(KEYWORD_CASES)
    for keyword in stated:
        schema, good, bad = KEYWORD_CASES[keyword]
        spec = JsonSchema(schema)
        assert _full_match(spec, good) and not _full_match(spec, bad), keyword


def test_json_schema_steers_the_structure_token_by_token_and_checks_bounds_at_the_end():
    steering = {"type": ('{"type": "integer"}', '"'), "properties": None, "required": None,
                "additionalProperties": ('{"type": "object", "properties": {"a": {}}, "additionalProperties": false}', '{"b'),
                "items": ('{"type": "array", "items": {"type": "integer"}}', '["'), "enum": ('{"enum": ["xy"]}', '"z'),
                "const": ('{"const": 12}', "3"), "anyOf": ('{"anyOf": [{"type": "integer"}, {"type": "null"}]}', '"')}
    assert set(_stated_keywords("Only the structure steers token by token")) == set(steering)
    for keyword, case in steering.items():
        if case is not None:  # properties/required steer through the object parser (covered by the examples)
            schema, dead_prefix = case
            assert not _viable_prefix(JsonSchema(json.loads(schema)), dead_prefix), keyword
    bounded = JsonSchema({"type": "object", "properties": {"n": {"type": "integer", "maximum": 3}}})
    assert _viable_prefix(bounded, '{"n": 7') and not _full_match(bounded, '{"n": 7}')  # a bound: only at the end


def test_a_compact_prompt_still_documents_every_name_its_examples_use():
    examples = [ex for ex in all_examples() if ex.program in ("paragraph_last_words", "json_schema")]
    compact = build_messages("Write a haiku.", examples=examples, compact=True)[0]["content"]
    assert len(compact) < 0.9 * len(system_prompt())
    reference = compact[: compact.index("## Rules")]
    for ex in examples:
        assert all(documented(n, reference) for n in used_library_names(ex.source)), ex.program
    assert "def clock(" not in reference  # a helper no example uses is left out
