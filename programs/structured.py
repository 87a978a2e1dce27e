"""Structured outputs: a JSON document valid under a schema, and text matching a regular expression.

Both draw one token per step inside a constraint (`JsonSchema`, `Regex`; see
`selfsteer.smc.TextModel.constrain_step`), so every finished output is in the language by
construction; ``check`` re-validates it with ``jsonschema`` / Python's ``re``.
"""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema

from selfsteer.smc import JsonSchema, LanguageModel, Regex

from .base import LibraryProgram
from .phrasing import AT_LEAST, AT_MOST, NUM, ExtractionError, bounds_of, number, require
from .registry import ProgramSpec

FAMILY = "structured"


STRING_MAX_CHARS = 40  # strings the schema leaves unbounded stay this short
ARRAY_MAX_ITEMS = 8  # and unbounded arrays this long


def matches_schema(text: str, schema: dict[str, Any]) -> bool:
    """``text`` is a JSON document valid under ``schema``."""
    try:
        jsonschema.validate(json.loads(text), schema)
    except (TypeError, ValueError, jsonschema.ValidationError):
        return False
    return True


class Unsupported(ValueError):
    """A schema construct `schema_regex` does not translate."""


def literal(text: str) -> str:
    """``text`` as a regex matching itself."""
    return re.sub(r"([.^$*+?{}\[\]\\|()/-])", r"\\\1", text)


def schema_regex(schema: Any) -> str:
    """A regex for compact JSON documents that are all valid under ``schema``.

    Objects list every property in order, ``{"a": 1, "b": "x"}``; strings have at most
    ``STRING_MAX_CHARS`` plain characters; arrays at most ``ARRAY_MAX_ITEMS`` items; integers
    and numbers are unbounded (schemas with bounds raise `Unsupported`, as do ``anyOf``,
    ``$ref``, ``pattern`` and the like).
    """
    if not isinstance(schema, dict):
        raise Unsupported(f"not a schema object: {schema!r}")
    if "enum" in schema or "const" in schema:
        values = schema.get("enum", [schema.get("const")])
        return "(" + "|".join(literal(json.dumps(v)) for v in values) + ")"
    supported = {"type", "properties", "required", "items", "minItems", "maxItems", "maxLength", "minLength",
                 "additionalProperties", "description", "title", "$schema", "minimum", "maximum"}
    extra = set(schema) - supported
    if schema.get("type") == "integer" and ("maximum" in schema or schema.get("minimum", 0) != 0):
        return integer_range(schema.get("minimum"), schema.get("maximum"))
    if extra or (schema.get("minimum", 0) != 0) or "maximum" in schema or schema.get("additionalProperties", False) not in (False, True):
        raise Unsupported(f"schema keywords {sorted(extra) or ['minimum/maximum/additionalProperties']}")
    kind = schema.get("type", "object" if "properties" in schema else None)
    if kind == "object":
        props = schema.get("properties", {})
        missing = set(schema.get("required", [])) - set(props)
        if missing:
            raise Unsupported(f"required properties without a schema: {sorted(missing)}")
        fields = [literal(json.dumps(k)) + ": " + schema_regex(v) for k, v in props.items()]
        return r"\{" + ", ".join(fields) + r"\}"
    if kind == "array":
        item = schema_regex(schema.get("items", {"type": "string"}))
        low = schema.get("minItems", 0)
        high = schema.get("maxItems", max(ARRAY_MAX_ITEMS, low))
        if high == 0:
            return r"\[\]"
        body = f"{item}(, {item}){{{max(low - 1, 0)},{high - 1}}}"
        return rf"\[({body})\]" if low else rf"\[({body})?\]"
    if kind == "string":
        low, high = schema.get("minLength", 0), schema.get("maxLength", STRING_MAX_CHARS)
        return f'"[^"\\\\]{{{low},{high}}}"'
    if kind == "integer":
        return "(0|[1-9][0-9]{0,8})" if "minimum" in schema else "(0|-?[1-9][0-9]{0,8})"
    if kind == "number":
        return r"(0|-?[1-9][0-9]{0,8})(\.[0-9]{1,4})?"
    if kind == "boolean":
        return "(true|false)"
    if kind == "null":
        return "null"
    raise Unsupported(f"type {kind!r}")


SCHEMA_KEYS = {"type", "properties", "items", "enum", "const", "anyOf", "oneOf", "allOf", "$schema", "$ref"}


def read_json_schema(task: str) -> dict[str, Any]:
    """The parameters of ``json_schema`` read from ``task`` (`ExtractionError` naming what is missing)."""
    decoder = json.JSONDecoder()
    for start in (i for i, c in enumerate(task) if c == "{"):
        try:
            value, _ = decoder.raw_decode(task[start:])
        except ValueError:
            continue
        if isinstance(value, dict) and SCHEMA_KEYS & set(value):
            return {"schema": value}
    if re.search(r"\bJSON\b", task) and (fields := JSON_FIELD.findall(task)):
        props = {name: field_schema(kind, detail) for name, kind, detail in fields}
        return {"schema": {"type": "object", "properties": props, "required": list(props), "additionalProperties": False}}
    raise ExtractionError("could not find a JSON schema (a JSON object with 'type' or 'properties', or keys "
                          "written as 'name (string), age (integer between 18 and 99)') in the task")


JSON_FIELD = re.compile(r"\b([A-Za-z_]\w*)\s*\(\s*(?:an?\s+)?(string|text|integer|int|whole number|number|float|decimal|boolean|bool)\b([^)]*)\)", re.I)
JSON_TYPES = {"string": "string", "text": "string", "integer": "integer", "int": "integer", "whole number": "integer",
              "number": "number", "float": "number", "decimal": "number", "boolean": "boolean", "bool": "boolean"}


def field_schema(kind: str, detail: str) -> dict[str, Any]:
    """The schema of one record field written as ``age (integer between 18 and 99)``."""
    schema: dict[str, Any] = {"type": JSON_TYPES[kind.lower()]}
    if schema["type"] == "string":
        low, high = bounds_of(detail, "characters?|chars?|letters?")
        schema |= {k: v for k, v in (("minLength", low), ("maxLength", high)) if v is not None}
    elif schema["type"] in ("integer", "number"):
        if m := re.search(rf"\b(?:between|from)\s+{NUM}\s+(?:and|to)\s+{NUM}", detail, re.I):
            schema |= {"minimum": number(m.group(1)), "maximum": number(m.group(2))}
        if m := re.search(rf"\b{AT_LEAST}\s+{NUM}", detail, re.I):
            schema["minimum"] = number(m.group(1))
        if m := re.search(rf"\b{AT_MOST}\s+{NUM}", detail, re.I):
            schema["maximum"] = number(m.group(1))
    return schema


INTEGER_RANGE_MAX = 400  # integer bounds spanning more values than this stay with the JSON-schema constraint


def integer_range(low: int | None, high: int | None) -> str:
    """A regex for the integers ``low..high`` (both bounds needed, at most ``INTEGER_RANGE_MAX`` values)."""
    if low is None or high is None or high - low > INTEGER_RANGE_MAX or high < low:
        raise Unsupported("integer bounds (only small closed ranges are translated)")
    return "(" + "|".join(str(v) for v in range(high, low - 1, -1)) + ")"


class JsonOutput(LibraryProgram):
    """A JSON document valid under ``schema`` (JSON Schema draft 7).

    Strategy: draw one token per step inside a `Regex` for compact documents valid under the
    schema (``schema_regex``: every property in order, bounded strings and arrays), or inside the
    full `JsonSchema` language where the schema uses constructs the regex does not cover; the
    follower prompted with the task proposes, weighted to the prior.
    Step granularity: one token.
    End conditions: EOS after a complete, valid document (or ``max_tokens``: the particle dies).
    """

    PRIOR = "Answer in JSON."
    SPEC = ProgramSpec(
        name="json_schema",
        family=FAMILY,
        extract=read_json_schema,
        description="Answer with a JSON object (or value) that is valid under a given JSON schema.",
        params_schema={
            "type": "object",
            "properties": {
                "schema": {"type": "object", "description": "a JSON Schema (draft 7)"},
                "max_tokens": {"type": "integer", "minimum": 4, "maximum": 1024, "default": 96},
            },
            "required": ["schema"],
            "additionalProperties": False,
        },
        examples=[
            (
                'Describe a person as JSON matching the schema {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}, "required": ["name", "age"]}.',
                {"schema": {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}, "required": ["name", "age"]}},
            ),
            (
                'Give a JSON list of three colour names; it must validate against {"type": "array", "items": {"type": "string"}, "minItems": 3, "maxItems": 3}.',
                {"schema": {"type": "array", "items": {"type": "string"}, "minItems": 3, "maxItems": 3}},
            ),
            (
                'Answer with JSON only, using this JSON schema: {"type": "object", "properties": {"city": {"type": "string"}, "population": {"type": "integer", "minimum": 0}}, "required": ["city"]}. Which is the largest city in Japan?',
                {"schema": {"type": "object", "properties": {"city": {"type": "string"}, "population": {"type": "integer", "minimum": 0}}, "required": ["city"]}},
            ),
        ],
    )

    def __init__(self, lm: LanguageModel, task: str, *, schema: dict[str, Any], max_tokens: int = 96):
        super().__init__(lm, task, max_tokens=max_tokens)
        self.schema = schema
        try:
            self.spec = Regex(schema_regex(schema))
        except Unsupported:
            self.spec = JsonSchema(schema)

    async def step(self):
        span = await self.constrain_step(self.spec)
        if span.ended:
            self.finish(span.text)
        elif span.done:
            await self.end()

    def check(self, text: str) -> bool:
        return matches_schema(text, self.schema)


def read_regex(task: str) -> dict[str, Any]:
    """The parameters of ``regex`` read from ``task`` (`ExtractionError` naming what is missing)."""
    found = re.search(r"`([^`]+)`", task) or re.search(r"(?:regex|regular expression|pattern)\s*(?:of\s+)?/(.+?)/(?:\s|$|[.,;])", task, re.I)
    if found is None:
        found = re.search(r"(?:regex|regular expression|pattern)\s*:?\s*['\"](.+?)['\"](?:\s|$|[.,;])", task, re.I)
    pattern = require(found, "the regular expression (put it in `backticks`)").group(1)
    try:
        re.compile(pattern)
    except re.error as e:
        raise ExtractionError(f"{pattern!r} is not a valid regular expression ({e})") from None
    return {"pattern": pattern}


class RegexOutput(LibraryProgram):
    """Text that fully matches the regular expression ``pattern`` (no backreferences or lookaround).

    Strategy: draw one token per step from the tokens that keep the text a prefix of some match
    (exact masks cached per automaton state), proposed by the follower prompted with the task
    and weighted to the prior.
    Step granularity: one token.
    End conditions: EOS after a full match, or a full match that nothing longer extends (then
    EOS is scored by the prior).
    """

    PRIOR = "Write the answer."
    SPEC = ProgramSpec(
        name="regex",
        family=FAMILY,
        extract=read_regex,
        description="Write text that exactly matches a given regular expression pattern (a format such as a date, a code or an ID).",
        params_schema={
            "type": "object",
            "properties": {
                "pattern": {"type": "string", "minLength": 1},
                "max_tokens": {"type": "integer", "minimum": 1, "maximum": 1024, "default": 48},
            },
            "required": ["pattern"],
            "additionalProperties": False,
        },
        examples=[
            ("Write a product code that matches the regular expression `[A-Z]{3}-[0-9]{4}`.", {"pattern": "[A-Z]{3}-[0-9]{4}"}),
            ("Give a date in the format matching the regex `[0-9]{4}-[0-9]{2}-[0-9]{2}`.", {"pattern": "[0-9]{4}-[0-9]{2}-[0-9]{2}"}),
            ("Name a fruit; your answer must match the pattern `[a-z]+`.", {"pattern": "[a-z]+"}),
        ],
    )

    def __init__(self, lm: LanguageModel, task: str, *, pattern: str, max_tokens: int = 48):
        super().__init__(lm, task, max_tokens=max_tokens)
        self.pattern = pattern
        self.spec = Regex(pattern)

    async def step(self):
        span = await self.constrain_step(self.spec)
        if span.ended:
            self.finish(span.text)
        elif span.done:
            await self.end()

    def check(self, text: str) -> bool:
        return isinstance(text, str) and re.fullmatch(self.pattern, text) is not None
