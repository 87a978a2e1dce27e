"""JSON-schema spans write only documents that `json.loads` and `jsonschema` accept: no duplicate
keys, no half characters, no leading whitespace, no raw control characters in strings. Checked by
exact enumeration on an ExactLM whose tokens invite each mistake (one token holds the first byte
of "é", another the second; one is a leading space; one reopens a used key)."""

from __future__ import annotations

import json
import math
import re

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_constraints import SpanProgram, assert_unbiased

from selfsteer.programs.structured import schema_regex
from selfsteer.smc import ExactLM, JsonSchema, smc
from selfsteer.smc.constraints.json_keys import dead_comma
from selfsteer.smc.lm.vocab import Vocabulary

SCHEMA = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
TOKENS = ('{"a": 1', ', "a', 'X', 'Y', '"', ': 2', '}', ' ')
HALVES = {"X": "é".encode()[:1], "Y": "é".encode()[1:]}


def json_lm() -> ExactLM:
    """An ExactLM whose tokens X and Y hold the two bytes of "é" (half a character each)."""
    lm = ExactLM(TOKENS, max_len=6, seed=3)
    lm.vocab = Vocabulary([HALVES.get(s, s.encode()) for s in lm.strings], eos_ids=lm.vocab.eos_ids)
    return lm


def no_duplicate_keys(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError(f"duplicate key in {pairs}")
    return dict(pairs)


def valid_document(data: bytes) -> bool:
    try:
        jsonschema.validate(json.loads(data.decode("utf-8"), object_pairs_hook=no_duplicate_keys), SCHEMA)
    except (ValueError, jsonschema.ValidationError):
        return False
    return True


def exact_z(lm: ExactLM) -> tuple[float, set[str]]:
    """Z of the span's target: EOS-ended token sequences whose text is a valid document, every
    token whole UTF-8 and the first not whitespace; and the set of texts some valid sequence gives."""
    z, texts, eos = 0.0, set(), lm.vocab.eos_id
    for seq, log_p in lm.continuations(lm.prompt_ids("}")):
        if not seq or seq[-1] != eos:
            continue
        parts = [lm.vocab.token_bytes[t] for t in seq[:-1]]
        whole = all(_utf8(p) for p in parts)
        if parts and whole and not parts[0][:1].isspace() and valid_document(b"".join(parts)):
            z += math.exp(log_p)
            texts.add(b"".join(parts).decode())
    return z, texts


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def test_candidates_exclude_half_characters_and_leading_whitespace():
    import asyncio

    lm = json_lm()
    constraint = JsonSchema(SCHEMA).bind(lm.vocab)
    x, y, space = TOKENS.index("X"), TOKENS.index("Y"), TOKENS.index(" ")
    assert not constraint.candidates[x] and not constraint.candidates[y]

    async def check():
        first = await constraint.allowed([])
        opened = [TOKENS.index('{"a": 1')]
        comma = await constraint.viable(opened, TOKENS.index(', "a'))
        closed = await constraint.viable(opened, TOKENS.index("}"))
        return first, comma, closed

    first, comma, closed = asyncio.run(check())
    assert not first[space] and first[TOKENS.index('{"a": 1')]
    assert not comma and closed  # after `{"a": 1` only a duplicate key could follow a comma


def test_dead_commas_are_found_at_every_depth():
    obj = {"type": "object", "properties": {"x": {"type": "integer"}, "y": {"type": "integer"}}}
    nested = {"type": "object", "properties": {"p": obj, "q": {"type": "array", "items": obj}}}
    assert not dead_comma(b'{"p": {"x": 1,', nested)
    assert dead_comma(b'{"p": {"x": 1, "y": 2,', nested)
    assert not dead_comma(b'{"p": {"x": 1, "y": 2}, "q": [{"x": 1, "y": 2}, {"x": 1,', nested)
    assert dead_comma(b'{"p": {"x": 1, "y": 2}, "q": [{"x": 1, "y": 2}, {"x": 1, "y": 2,', nested)
    assert dead_comma(b'{"p": {"x": 1, "y": 2}, "q": [], ', nested)
    assert not dead_comma(b'{"p": "a,b",', nested)  # commas inside strings do not count
    assert not dead_comma(b'{"x": 1, "y": 2,', {"type": "object", "properties": obj["properties"],
                                                "additionalProperties": True})


def test_every_finished_document_is_valid():
    lm = json_lm()
    z, texts = exact_z(lm)
    assert z > 0 and texts
    outputs = set()
    for seed in range(20):
        result = smc(SpanProgram(lm, JsonSchema(SCHEMA), prompt="}"), 6, seed=seed)
        outputs |= set(result.posterior)
    assert outputs and outputs <= texts  # (particles that reach the LM's max_len unfinished die)
    assert all(valid_document(out.encode()) for out in outputs)


def test_json_log_ml_is_unbiased_for_the_documented_target():
    lm = json_lm()
    z, _ = exact_z(lm)
    assert_unbiased(lambda: SpanProgram(lm, JsonSchema(SCHEMA), prompt="}"), z, n_particles=3,
                    ess_threshold=0.5, seeds=120)


STRING_SCHEMAS = [{"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 3},
                  {"type": "object", "properties": {"name": {"type": "string", "maxLength": 5}}}]


@pytest.mark.parametrize("schema", STRING_SCHEMAS)
@settings(max_examples=200, deadline=None)
@given(items=st.lists(st.text(max_size=5), min_size=1, max_size=3))
def test_schema_regex_matches_only_documents_json_loads_accepts(schema, items):
    doc = (f'[{", ".join(chr(34) + s + chr(34) for s in items)}]' if schema["type"] == "array"
           else f'{{"name": "{items[0]}"}}')
    if re.fullmatch(schema_regex(schema), doc):
        jsonschema.validate(json.loads(doc), schema)  # raises on control characters or bad structure
