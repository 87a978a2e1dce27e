"""The task set and its independent constraint checker (`selfsteer.programs.tasks`)."""

from __future__ import annotations

import json
import string
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from selfsteer.programs.registry import get_program
from selfsteer.programs.tasks import check_constraints, load_tasks, passes

TASKS = Path(__file__).resolve().parents[1] / "benchmarks" / "tasks" / "self_steering.jsonl"
FREE_TASKS = TASKS.with_name("self_steering_free.jsonl")


def test_task_set_is_large_and_well_formed(lm):
    tasks = load_tasks(TASKS)
    assert len(tasks) >= 40
    assert len({t["id"] for t in tasks}) == len(tasks)
    families = {t["family"] for t in tasks}
    assert families == {"collie_sentences", "collie_paragraphs", "puzzles"}
    for t in tasks:
        cls = get_program(t["checker"]["program"])
        cls(lm, t["task"], **cls.SPEC.validate(t["checker"]["params"]))  # the expected plan builds


def test_free_task_set_is_large_half_compound_and_checkable():
    tasks = load_tasks(FREE_TASKS)
    assert len(tasks) >= 30
    assert len({t["id"] for t in tasks} | {t["id"] for t in load_tasks(TASKS)}) == len(tasks) + len(load_tasks(TASKS))
    compound = [t for t in tasks if t["family"] == "free_compound"]
    assert len(compound) >= len(tasks) / 2

    def n_parts(c):  # each banned letter counts; acrostics, JSON records and priced lists are families of their own
        own_family = {"line_initials", "json_fields", "priced_items"} & set(c)
        return len(set(c) - {"unit"}) + len(c.get("banned_letters", "x")) - 1 + 2 * bool(own_family)

    assert all(n_parts(t["constraints"]) >= 2 for t in compound)
    for t in tasks:
        check_constraints(t["constraints"], "A sentence.")  # every constraint is known and checkable


@pytest.mark.parametrize("constraints, good, bad", [
    ({"unit": "sentence", "n_words": 6, "words_at": {"1": "every"}, "last_word": "morning"},
     "Every bird sings in the morning.", ["Every bird sings in the morning light.", "Each bird sings in the morning."]),
    ({"unit": "lines", "line_initials": "RAIN"}, "Rivers rise\nAll night\n  in the dark\nNow it stops",
     ["Rivers rise\nAll night\nIn the dark", "Rivers rise\nAll night\nOn the roof\nNow it stops"]),
    ({"unit": "lines", "priced_items": {"n_items": 3, "max_total": 10}}, "1. Milk - $2.50\n2. Bread: $3\n3. Eggs $4.50",
     ["Milk $2.50\nBread $3\nEggs $4.51", "Milk $2.50\nBread $3", "Milk $2.50\nBread\nEggs $1", "Milk $1 or $2\nBread $3\nEggs $1"]),
    ({"priced_items": {"n_items": 2, "total_below": 5}}, "- a: $2\n- b: $2.99", ["- a: $2\n- b: $3"]),
    ({"json_fields": {"name": {"type": "string"}, "age": {"type": "integer", "min": 18, "max": 99}}},
     '```json\n{"name": "Ann", "age": 18}\n```',
     ['{"name": "Ann", "age": 17}', '{"name": "Ann", "age": 18.5}', '{"name": "Ann", "age": true}', '{"name": 3, "age": 30}',
      '{"name": "Ann"}', '{"name": "Ann", "age": 30, "city": "Oslo"}', '["Ann", 30]', 'name: Ann, age: 30']),
    ({"json_fields": {"rating": {"type": "number", "min": 0, "max": 5}}}, '{"rating": 4.5}', ['{"rating": 5.5}', '{"rating": "4"}']),

    ({"unit": "sentence", "n_words": 4}, "The cat sat down.", ["The cat sat.", "The cat sat down", "The cat. Sat down."]),
    ({"unit": "sentence", "words_at": {"2": "old"}}, "An old man.", ["An older man.", "Old man."]),
    ({"unit": "sentence", "max_word_chars": 4, "min_words": 3}, "I saw a dog.", ["I saw a puppy.", "I saw."]),
    ({"unit": "sentence", "include_words": ["Sun", "moon"]}, "The sun and the moon.", ["The sunny moon.", "The sun."]),
    ({"unit": "sentence", "n_chars": 10}, "Hi, there.", ["Hi there.", "Hi, there!!"]),
    ({"unit": "sentence", "banned_letters": "e"}, "A cat sat.", ["A cat sat here.", "A CAT SAT HERE."]),
    ({"unit": "paragraph", "n_sentences": 2, "sentence_min_words": 2, "sentence_max_words": 3}, "It is. We go home.",
     ["It is.", "It is. We go home now.", "It is.\nWe go."]),
    ({"unit": "paragraph", "min_sentences": 2, "sentence_starts_with": "we"}, "We ran. We sat!", ["We ran. They sat.", "We ran."]),
    ({"unit": "paragraph", "forbidden_words": ["the"]}, "A cat. Theory is fun.", ["The cat.", "A cat saw THE dog."]),
    ({"unit": "paragraph", "sentence_last_words": ["home", "day"]}, "I go home. Long day!", ["I go home.", "I go home. Day long."]),
    ({"unit": "lines", "n_lines": 2, "words_per_line": 2}, "Red sky\nBlue sea", ["Red sky\nBlue deep sea", "Red sky"]),
    ({"unit": "lines", "item_lines": {"max_items": 2, "total_below": 3.0}}, "- a: $1.00\n- b: $1.99",
     ["- a: $1.00\n- b: $2.00", "- a: $1\n- b: $1\n- c: $0.50", "a: $1.00"]),
    ({"unit": "lines", "schedule": {"n_activities": 2, "start": "9:00", "end": "12:00"}}, "9:00-10:00: Museum\n10:00-11:30: Park",
     ["9:00-10:00: Museum\n9:30-11:30: Park", "8:00-10:00: Museum\n10:00-11:30: Park", "9:00-10:00: Museum", "10:00-9:00: A\n10:00-11:00: B"]),
    ({"unit": "paragraph", "starts_with": "Abstract:", "min_words": 2, "max_words": 3}, "Abstract: We study birds.",
     ["We study birds.", "Abstract: We study many birds."]),
])
def test_constraints_accept_and_reject(constraints, good, bad):
    assert check_constraints(constraints, good) == []
    for text in bad:
        assert not passes(constraints, text), text


@given(ws=st.lists(st.text(alphabet=string.ascii_letters, min_size=1, max_size=9), min_size=1, max_size=25), n=st.integers(1, 25))
def test_word_counts_match_a_plain_count(ws, n):
    text = " ".join(ws) + "."
    assert passes({"unit": "sentence", "n_words": n}, text) == (len(ws) == n)
    assert passes({"max_word_chars": 5}, text) == all(len(w) <= 5 for w in ws)


def test_failures_name_the_constraint():
    assert check_constraints({"unit": "sentence", "n_words": 3}, "One two.") == ["3 words (has 2)"]
    assert check_constraints({"unit": "sentence"}, "") == ["the output is empty", "a sentence ends with . ! or ?", "exactly one sentence"]


def test_bad_specs_and_files_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown constraint"):
        check_constraints({"n_wrods": 3}, "x")
    with pytest.raises(ValueError, match="unit must be one of"):
        check_constraints({"unit": "poem"}, "x")
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps({"id": "a", "task": "x"}) + "\n")
    with pytest.raises(ValueError, match=r"t.jsonl:1: .*missing \['constraints'\]"):
        load_tasks(path)
    path.write_text("{not json\n")
    with pytest.raises(ValueError, match="t.jsonl:1: not JSON"):
        load_tasks(path)
