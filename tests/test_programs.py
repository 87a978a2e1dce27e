"""The hand-written program library: registry contract, checks, and runs on the bundled model.

Every library program runs with SMC on the bundled SmolLM2-135M (small N, short outputs) and
its finished particles pass both its own ``check`` and the independent constraint checker
(`selfsteer.programs.tasks`). Checks are also tested against violating texts.
"""

from __future__ import annotations

import inspect
import json
import re
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from selfsteer.programs.base import LibraryProgram
from selfsteer.programs.registry import all_programs, build_program, get_program
from selfsteer.programs.structured import Unsupported, schema_regex
from selfsteer.programs.tasks import passes
from selfsteer.programs.text import count_words, is_one_sentence, sentences, words
from selfsteer.smc import smc

# One small run per program: (name, task, params, independent constraints, slow).
RUNS = [
    ("sentence_word_count", "Write a sentence with exactly 5 words.", {"n_words": 5},
     {"unit": "sentence", "n_words": 5}, False),
    ("sentence_words_at_positions", "Write a sentence of 5 words whose 2nd word is 'old' and whose 5th word is 'sea'.",
     {"words_at": {"2": "old", "5": "sea"}, "n_words": 5}, {"unit": "sentence", "n_words": 5, "words_at": {"2": "old", "5": "sea"}}, False),
    ("sentence_max_word_length", "Write a sentence of at least 5 words, each shorter than 5 letters.",
     {"max_word_chars": 4, "min_words": 5, "max_words": 8}, {"unit": "sentence", "min_words": 5, "max_word_chars": 4}, False),
    ("sentence_including_words", "Write a sentence that includes the words 'cat' and 'sun'.",
     {"words": ["cat", "sun"], "max_words": 8}, {"unit": "sentence", "include_words": ["cat", "sun"]}, False),
    ("sentence_char_count", "Write a sentence of exactly 24 characters.", {"n_chars": 24},
     {"unit": "sentence", "n_chars": 24}, False),
    ("sentence_without_letter", "Write a sentence without the letter 'e'.", {"letter": "e", "min_words": 3, "max_words": 6},
     {"unit": "sentence", "banned_letters": "e", "min_words": 3}, False),
    ("paragraph_sentence_count", "Write a paragraph of exactly 2 sentences.", {"n_sentences": 2, "min_words": 3, "max_words": 6},
     {"unit": "paragraph", "n_sentences": 2, "sentence_min_words": 3, "sentence_max_words": 6}, True),
    ("paragraph_sentence_starts", "Write 2 sentences that both begin with the word 'We'.", {"start_word": "We", "n_sentences": 2},
     {"unit": "paragraph", "n_sentences": 2, "sentence_starts_with": "we"}, True),
    ("paragraph_forbidden_words", "Write 2 sentences without using the words 'the' or 'a'.", {"forbidden": ["the", "a"], "n_sentences": 2},
     {"unit": "paragraph", "n_sentences": 2, "forbidden_words": ["the", "a"]}, True),
    ("paragraph_last_words", "Write 2 sentences that end with 'home' and 'day'.", {"last_words": ["home", "day"]},
     {"unit": "paragraph", "sentence_last_words": ["home", "day"]}, True),
    ("square_poem", "Write a poem of 2 lines with 2 words each.", {"n": 2},
     {"unit": "lines", "n_lines": 2, "words_per_line": 2}, False),
    ("ingredient_list_budget", "List at most 2 ingredients for toast with prices, at most $3.", {"max_items": 2, "budget": 3.0, "min_items": 1},
     {"unit": "lines", "item_lines": {"max_items": 2, "max_total": 3.0}}, True),
    ("trip_itinerary", "Plan 2 activities in Rome between 9:00 and 12:00, one line each as 'H:MM-H:MM: activity'.",
     {"n_activities": 2, "start_hour": 9, "end_hour": 12}, {"unit": "lines", "schedule": {"n_activities": 2, "start": "9:00", "end": "12:00"}}, True),
    ("grant_abstract", "Write a grant abstract starting with 'Abstract:' of 8 to 14 words, without the word 'bees'.",
     {"min_words": 8, "max_words": 14, "forbidden": ["bees"]},
     {"unit": "paragraph", "starts_with": "Abstract:", "min_words": 8, "max_words": 14, "forbidden_words": ["bees"]}, True),
    ("json_schema", 'Give a JSON object matching {"type": "object", "properties": {"ok": {"type": "boolean"}}}.',
     {"schema": {"type": "object", "properties": {"ok": {"type": "boolean"}}}}, {"unit": "text"}, False),
    ("regex", "Write a code matching `[A-Z]{2}-[0-9]{2}`.", {"pattern": "[A-Z]{2}-[0-9]{2}"}, {"unit": "text"}, False),
    ("composed", "Write a sentence of exactly 5 words without the letter 'e'.",
     {"unit": "sentence", "constraints": [{"kind": "word_count", "min_words": 5, "max_words": 5}, {"kind": "banned_letters", "letters": "e"}]},
     {"unit": "sentence", "n_words": 5, "banned_letters": "e"}, False),
]


# ----- the registry ---------------------------------------------------------------------------
def test_registry_lists_every_program_once():
    programs = all_programs()
    names = [cls.SPEC.name for cls in programs]
    assert len(names) == len(set(names)) == 17
    assert sorted(names) == sorted(r[0] for r in RUNS)
    families = {cls.SPEC.family for cls in programs}
    assert families == {"collie_sentences", "collie_paragraphs", "puzzles", "structured", "composed"}


@pytest.mark.parametrize("cls", all_programs(), ids=lambda c: c.SPEC.name)
def test_docstring_states_strategy_granularity_and_end(cls):
    doc = inspect.getdoc(cls)
    for part in ("Strategy:", "Step granularity:", "End conditions:"):
        assert part in doc, f"{cls.__name__} docstring lacks {part!r}"
    assert issubclass(cls, LibraryProgram) and cls.check is not LibraryProgram.check


@pytest.mark.parametrize("cls", all_programs(), ids=lambda c: c.SPEC.name)
def test_examples_satisfy_the_schema_and_build(cls, lm):
    assert len(cls.SPEC.examples) >= 3
    keyword_only = {p.name for p in inspect.signature(cls.__init__).parameters.values() if p.kind is p.KEYWORD_ONLY}
    assert set(cls.SPEC.params_schema["properties"]) <= keyword_only
    for task, params in cls.SPEC.examples:
        program = cls(lm, task, **cls.SPEC.validate(params))
        assert program.task == task


def test_bad_params_get_a_clear_error(lm):
    with pytest.raises(ValueError, match="bad parameters for program 'sentence_word_count' at n_words"):
        build_program(lm, "Write a sentence.", "sentence_word_count", {"n_words": "ten"})
    with pytest.raises(ValueError, match="Expected parameters: n_words"):
        build_program(lm, "Write a sentence.", "sentence_word_count", {"words": 10})
    with pytest.raises(ValueError, match="known programs: .*sentence_word_count"):
        get_program("no_such_program")
    with pytest.raises(ValueError, match="position 9 lies beyond"):
        build_program(lm, "t", "sentence_words_at_positions", {"words_at": {"9": "x"}, "n_words": 5})
    with pytest.raises(ValueError, match="too small"):
        build_program(lm, "t", "ingredient_list_budget", {"max_items": 5, "budget": 0.5})
    with pytest.raises(ValueError, match="task as non-empty text"):
        get_program("regex")(lm, "  ", pattern="a")


# ----- runs on the bundled model --------------------------------------------------------------
@pytest.mark.parametrize(
    "name, task, params, constraints",
    [pytest.param(n, t, p, c, marks=[pytest.mark.slow] if slow else [], id=n) for n, t, p, c, slow in RUNS],
)
def test_program_passes_its_own_check_on_the_bundled_model(lm, name, task, params, constraints):
    program = build_program(lm, task, name, params)
    result = smc(program, 2, seed=0, time_limit=600)
    finished = [p for p in result.particles if p.finished and p.alive]
    assert finished, f"every particle died: {result.status}"
    for p in finished:
        assert p._check_passed is True
        assert program.check(p.output), p.output
        assert passes(constraints, p.output), (p.output, constraints)
    if name == "json_schema":
        assert all(json.loads(p.output) in ({"ok": True}, {"ok": False}) for p in finished)


# ----- checks reject violations ---------------------------------------------------------------
WORD = st.text(alphabet=string.ascii_lowercase, min_size=1, max_size=8)


@given(ws=st.lists(WORD, min_size=1, max_size=20), n=st.integers(1, 20))
@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_word_count_check_accepts_exactly_n_words(lm, ws, n):
    text = " ".join(ws).capitalize() + "."
    program = get_program("sentence_word_count")(lm, "t", n_words=n)
    assert program.check(text) == (len(ws) == n)


@given(text=st.text(alphabet=string.ascii_letters + " ,", min_size=1, max_size=60), letter=st.sampled_from("aeiost"))
@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_banned_letter_check(lm, text, letter):
    sentence = "Go " + text + " now."
    program = get_program("sentence_without_letter")(lm, "t", letter=letter, min_words=1)
    expected = letter not in sentence.lower() and is_one_sentence(sentence)
    assert program.check(sentence) == expected


@given(n=st.integers(10, 80), extra=st.integers(-5, 5))
@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_char_count_check(lm, n, extra):
    body = ("ab " * 40)[: max(n + extra - 1, 1)].rstrip() or "a"
    text = body[0].upper() + body[1:] + "."
    program = get_program("sentence_char_count")(lm, "t", n_chars=n)
    assert program.check(text) == (len(text) == n)


@pytest.mark.parametrize("name, params, good, bad", [
    ("sentence_words_at_positions", {"words_at": {"2": "old", "4": "sea"}}, "The old grey sea.", ["The grey old sea.", "The old grey sea. It is."]),
    ("sentence_max_word_length", {"max_word_chars": 4, "min_words": 3}, "I am a cat, not a dog.", ["I am a kitten.", "I am."]),
    ("sentence_including_words", {"words": ["cat", "sun"]}, "The Cat sat in the sun.", ["The cat sat.", "The cats sat in the sunny park."]),
    ("paragraph_sentence_count", {"n_sentences": 2, "min_words": 2, "max_words": 4}, "It is cold. We go home.", ["It is cold.", "It is very very cold. We go.", "It is.\nWe go home."]),
    ("paragraph_sentence_starts", {"start_word": "We", "n_sentences": 2}, "We ran. We sat down.", ["We ran. They sat.", "We ran."]),
    ("paragraph_forbidden_words", {"forbidden": ["the"], "n_sentences": 2}, "A cat ran. Then it slept.", ["The cat ran. Then it slept.", "A cat ran."]),
    ("paragraph_last_words", {"last_words": ["home", "day"]}, "I went home. It was a long day!", ["I went home. It was a day off.", "I went home."]),
    ("square_poem", {"n": 2}, "Red sky,\nblue sea.", ["Red sky,\nblue sea today.", "Red sky."]),
    ("ingredient_list_budget", {"max_items": 2, "budget": 3.0}, "- bread: $1.50\n- butter: $1.50", ["- bread: $1.50\n- butter: $1.51", "- bread: $1\n", "- a: $0.10\n- b: $0.10\n- c: $0.10"]),
    ("trip_itinerary", {"n_activities": 2, "start_hour": 9, "end_hour": 12}, "9:00-10:00: Museum.\n10:30-12:00: Lunch.", ["9:00-10:30: Museum.\n10:00-12:00: Lunch.", "8:30-10:00: Museum.\n10:30-12:00: Lunch.", "9:00-10:00: Museum."]),
    ("grant_abstract", {"min_words": 3, "max_words": 5, "forbidden": ["bees"]}, "Abstract: We study small birds.", ["Abstract: We study bees.", "We study small birds.", "Abstract: We study many small birds today."]),
    ("json_schema", {"schema": {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}}, '{"n": 3}', ['{"n": "3"}', "{}", "not json"]),
    ("regex", {"pattern": "[A-Z]{2}-[0-9]{2}"}, "AB-12", ["AB-123", "ab-12", ""]),
])
def test_checks_accept_and_reject(lm, name, params, good, bad):
    program = get_program(name)(lm, "t", **params)
    assert program.check(good)
    for text in bad:
        assert not program.check(text), text


# ----- helpers ---------------------------------------------------------------------------------
@given(ws=st.lists(WORD, min_size=1, max_size=12), punct=st.lists(st.sampled_from(["", ",", ";", "!", "'"]), min_size=12, max_size=12))
def test_words_ignore_surrounding_punctuation(ws, punct):
    text = " ".join(w + p for w, p in zip(ws, punct, strict=False))
    assert words(text) == ws
    assert count_words(text) == len(ws)


def test_sentences_split_on_end_marks():
    assert sentences("One two. Three four! Five?") == ["One two.", "Three four!", "Five?"]
    assert is_one_sentence("The cat sat.") and not is_one_sentence("The cat. Sat.") and not is_one_sentence("No end")


@given(st.data())
@settings(max_examples=30)
def test_schema_regex_outputs_validate(data):
    import jsonschema

    schema = {"type": "object", "properties": {
        "name": {"type": "string", "maxLength": 5}, "n": {"type": "integer"}, "tags": {"type": "array", "items": {"type": "boolean"}, "maxItems": 2},
    }}
    pattern = schema_regex(schema)
    doc = {"name": data.draw(st.text(alphabet=string.ascii_letters + " ", max_size=5)),
           "n": data.draw(st.integers(-999, 999)),
           "tags": data.draw(st.lists(st.booleans(), max_size=2))}
    text = json.dumps(doc)
    assert re.fullmatch(pattern, text), (pattern, text)
    jsonschema.validate(json.loads(text), schema)


@given(low=st.integers(0, 150), width=st.integers(0, 60), value=st.integers(-10, 300))
def test_schema_regex_translates_small_integer_ranges(low, width, value):
    pattern = schema_regex({"type": "integer", "minimum": low, "maximum": low + width})
    assert (re.fullmatch(pattern, str(value)) is not None) == (low <= value <= low + width)


def test_schema_regex_rejects_what_it_cannot_translate():
    for schema in ({"anyOf": [{"type": "string"}]}, {"type": "string", "pattern": "a+"}, {"type": "integer", "minimum": 3}):
        with pytest.raises(Unsupported):
            schema_regex(schema)
