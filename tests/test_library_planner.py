"""The offline library planner: retrieval with the bundled MiniLM, rule-based parameters, NoProgramFits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from selfsteer.planners.extract import ExtractionError, bounds_of, extract_params, number
from selfsteer.planners.library import LibraryPlanner
from selfsteer.planners.plan import NoProgramFits
from selfsteer.programs.registry import all_programs

TASKS = Path(__file__).resolve().parents[1] / "benchmarks" / "tasks" / "self_steering.jsonl"

# Paraphrases written for this test (not among the programs' examples or the benchmark tasks).
PARAPHRASES = [
    ("Write a 14-word sentence about coffee.", "sentence_word_count", {"n_words": 14}),
    ("Can you write me a sentence that's exactly eleven words long?", "sentence_word_count", {"n_words": 11}),
    ("Write a sentence where the 1st word is 'Under' and the 4th word is 'stars'.", "sentence_words_at_positions", {"words_at": {"1": "Under", "4": "stars"}}),
    ("Write a sentence of at least 18 words, none of them longer than five letters.", "sentence_max_word_length", {"max_word_chars": 5, "min_words": 18}),
    ("Please write a sentence that contains the words 'violin', 'rain' and 'window'.", "sentence_including_words", {"words": ["violin", "rain", "window"]}),
    ("Write a sentence exactly 55 characters in length.", "sentence_char_count", {"n_chars": 55}),
    ("Write a sentence without the letter 'u'.", "sentence_without_letter", {"letter": "u"}),
    ("Write a paragraph that has exactly 3 sentences.", "paragraph_sentence_count", {"n_sentences": 3}),
    ("Write a paragraph in which all sentences start with the word 'Never'.", "paragraph_sentence_starts", {"start_word": "Never"}),
    ("Write a paragraph about trains that avoids the words 'track', 'engine' and 'station'.", "paragraph_forbidden_words", {"forbidden": ["track", "engine", "station"]}),
    ("Write 2 sentences where the first ends with 'gold' and the second ends with 'silver'.", "paragraph_last_words", {"last_words": ["gold", "silver"]}),
    ("Write a poem of 5 lines with 5 words in each line.", "square_poem", {"n": 5}),
    ("List at most 6 ingredients with prices for a pizza, spending no more than $20.", "ingredient_list_budget", {"max_items": 6, "budget": 20.0}),
    ("Plan my day in Berlin: 5 activities between 9:00 and 19:00, with times.", "trip_itinerary", {"n_activities": 5, "start_hour": 9, "end_hour": 19}),
    ("Write a grant proposal abstract on ocean plastics of 50 to 70 words, starting with 'Abstract:'.", "grant_abstract", {"min_words": 50, "max_words": 70}),
    ('Reply with JSON valid under {"type": "object", "properties": {"answer": {"type": "string"}}}.', "json_schema", {"schema": {"type": "object", "properties": {"answer": {"type": "string"}}}}),
    ("Give me a phone number that matches the regex `[0-9]{3}-[0-9]{4}`.", "regex", {"pattern": "[0-9]{3}-[0-9]{4}"}),
    ("List 3 grocery items for a picnic, each with a dollar price, no more than $10 in total.", "ingredient_list_budget",
     {"max_items": 3, "budget": 10.0, "min_items": 3}),
    ("Give me a JSON object with keys name (string), age (integer between 18 and 99) and city (string).", "json_schema",
     {"schema": {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 18, "maximum": 99},
                                                  "city": {"type": "string"}}, "required": ["name", "age", "city"], "additionalProperties": False}}),
]
UNRELATED = [
    "What is the capital of France?", "Translate 'good morning' into German.", "Solve 2x + 3 = 7.",
    "Write a Python function that reverses a list.", "Summarize the plot of Hamlet.", "Write a haiku about autumn.",
    "Write a story about a dragon.", "Write a sentence.", "Tell me a joke.",
]


@pytest.fixture(scope="module")
def planner():
    return LibraryPlanner()


def example_cases():
    return [(task, cls.SPEC.name, params) for cls in all_programs() for task, params in cls.SPEC.examples]


def benchmark_cases():
    rows = [json.loads(line) for line in TASKS.read_text().splitlines() if line.strip()]
    return [(r["task"], r["checker"]["program"], r["checker"]["params"]) for r in rows]


@pytest.mark.parametrize("task, name, params", example_cases() + benchmark_cases() + PARAPHRASES)
def test_extraction_rules_read_the_parameters(task, name, params):
    assert extract_params(name, task) == params


@pytest.mark.slow
@pytest.mark.parametrize("task, name, params", example_cases() + benchmark_cases() + PARAPHRASES)
def test_planner_picks_the_program_and_its_parameters(planner, task, name, params):
    plan = planner.plan(task)
    assert (plan.program_name, plan.params) == (name, params)
    assert plan.origin == "library" and plan.trusted
    assert f"class {plan.class_name}(" in plan.source


@pytest.mark.parametrize("task", UNRELATED)
def test_unrelated_tasks_get_no_program_fits(planner, task):
    with pytest.raises(NoProgramFits, match="planner LM"):
        planner.plan(task)


def test_similarity_ranks_the_right_program_first_for_each_description(planner):
    for cls in planner.programs:
        assert planner.rank(cls.SPEC.description)[0].program is cls


def test_feedback_moves_to_the_next_candidate_then_gives_up(planner):
    task = "Write a sentence of 8 words whose first word is 'Every' and whose last word is 'home'."
    first = planner.plan(task)
    assert first.program_name == "sentence_words_at_positions"
    second = planner.plan(task, feedback="ProgramError: boom")  # no other library program covers the task
    assert second.program_name == "composed"
    assert second.interpreted_as() == "sentence(word_count(min_words=8, max_words=8), words_at(words_at={'1': 'Every', '8': 'home'}))"
    with pytest.raises(NoProgramFits, match="all failed; last error: ProgramError: boom"):
        planner.plan(task, feedback="ProgramError: boom")
    assert planner.plan(task).program_name == "sentence_words_at_positions"  # a fresh plan starts over


def test_parameters_that_cannot_be_read_say_so(planner):
    with pytest.raises(NoProgramFits, match="parameters could not be read"):
        planner.plan("Write a sentence with some number of words.")


def test_bad_task_is_a_clear_error(planner):
    with pytest.raises(ValueError, match="non-empty text"):
        planner.plan("   ")


# ----- rule primitives ---------------------------------------------------------------------------
SPELLED = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
           "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def spell(n: int) -> str:
    if n < 20:
        return SPELLED[n]
    return TENS[n // 10] + ("" if n % 10 == 0 else "-" + SPELLED[n % 10])


@given(st.integers(0, 99))
def test_numbers_in_digits_and_words(n):
    assert number(str(n)) == n
    assert number(spell(n)) == n


@given(n=st.integers(1, 60), spelled=st.booleans(), template=st.sampled_from([
    "Write a sentence with exactly {} words.", "Write a {}-word sentence.", "Give me one sentence of {} words, please.",
]))
def test_word_count_read_from_templates(n, spelled, template):
    task = template.format(spell(n) if spelled else n)
    assert extract_params("sentence_word_count", task) == {"n_words": n}


@given(low=st.integers(1, 50), width=st.integers(0, 50))
def test_bounds(low, width):
    high = low + width
    assert bounds_of(f"between {low} and {high} words", "words?") == (low, high)
    assert bounds_of(f"{low} to {high} words long", "words?") == (low, high)
    assert bounds_of(f"at least {low} words", "words?") == (low, None)
    assert bounds_of(f"at most {high} words", "words?") == (None, high)
    assert bounds_of(f"fewer than {high + 1} words", "words?") == (None, high)


def test_bounds_are_not_exact_counts():
    with pytest.raises(ExtractionError):
        extract_params("sentence_word_count", "Write a sentence of at least 12 words.")
    with pytest.raises(ExtractionError):
        extract_params("sentence_char_count", "Use words of less than six characters.")
    with pytest.raises(ExtractionError, match="forbids words"):
        extract_params("sentence_including_words", "Write a paragraph without using the words 'sun' and 'moon'.")


def test_budgets_and_times():
    assert extract_params("ingredient_list_budget", "At most 3 ingredients for under $7.50.") == {"max_items": 3, "budget": 7.49}
    assert extract_params("trip_itinerary", "3 activities from 10 AM to 4 PM.") == {"n_activities": 3, "start_hour": 10, "end_hour": 16}
    assert extract_params("trip_itinerary", "2 stops between 12 pm and 6 pm") == {"n_activities": 2, "start_hour": 12, "end_hour": 18}
    with pytest.raises(ExtractionError, match="not a square poem"):
        extract_params("square_poem", "Write a poem with 4 lines of 5 words.")


# ----- the parameter LM fallback -------------------------------------------------------------------
def test_few_shot_prompt_and_required_schema():
    from selfsteer.planners.lm_params import few_shot_prompt, required_only
    from selfsteer.programs.registry import get_program

    spec = get_program("sentence_max_word_length").SPEC
    prompt = few_shot_prompt(spec, "Write short words.")
    assert prompt.count("Task: ") == len(spec.examples) + 1 and prompt.endswith("Task: Write short words.\nParameters: ")
    assert json.dumps(spec.examples[0][1]) in prompt
    assert required_only(spec.params_schema) == {"type": "object", "properties": {"max_word_chars": {"type": "integer"}}}


@pytest.mark.slow
def test_parameter_lm_fills_what_the_rules_cannot(lm):
    planner = LibraryPlanner(param_lm=lm)
    plan = planner.plan("Write a sentence with some number of words.")
    assert plan.program_name == "sentence_word_count"
    assert set(plan.params) == {"n_words"} and 1 <= plan.params["n_words"] <= 60
    with pytest.raises(NoProgramFits, match="No library program fits"):
        planner.plan("What is the capital of France?")  # the LM never rescues an unrelated task


# ----- the constraint vocabulary and composition ----------------------------------------------------
from selfsteer.programs.vocabulary import (  # noqa: E402
    BannedLetters,
    BannedWords,
    LastWords,
    MaxWordLength,
    RequiredWords,
    SegmentStarts,
    WordCount,
    WordInitial,
    WordsAt,
    constraint_from_dict,
    parse_prose,
)

ORDINAL_WORDS = ["first", "second", "third", "fourth"]
NOUNS = ["candle", "harbor", "violin", "copper", "orchard", "lantern", "meadow", "pepper"]
RARE_LETTERS = "bfjkqvxz"


def phrasings(kind: str, draw) -> tuple[str, object]:
    """One free phrasing of a sentence constraint of ``kind`` and the constraint it states."""
    pick = lambda xs: draw(st.sampled_from(xs))  # noqa: E731
    n = draw(st.integers(5, 30))
    word, other = draw(st.lists(st.sampled_from(NOUNS), min_size=2, max_size=2, unique=True))
    letter = pick(list(RARE_LETTERS))
    quote = pick(["'", '"', ""])
    if kind == "word_count":
        return pick([
            (f"with exactly {n} words", WordCount(n, n)), (f"of {spell(n)} words", WordCount(n, n)),
            (f"of at most {n} words", WordCount(None, n)), (f"of no more than {spell(n)} words", WordCount(None, n)),
            (f"with between {n} and {n + 5} words", WordCount(n, n + 5)), (f"with fewer than {n} words", WordCount(None, n - 1)),
        ])
    if kind == "words_at":
        k = draw(st.integers(1, 4))
        return pick([(f"where the {ORDINAL_WORDS[k - 1]} word is {quote}{word}{quote}", WordsAt(((k, word),))),
                     (f"where word number {k} is {quote}{word}{quote}", WordsAt(((k, word),)))])
    if kind == "banned_letters":
        return pick([(f"without the letter {quote}{letter}{quote}", BannedLetters(letter)),
                     (f"without using the character {quote}{letter}{quote}", BannedLetters(letter)),
                     (f"in which the letter {quote}{letter}{quote} never appears", BannedLetters(letter))])
    if kind == "banned_words":
        return pick([(f"without the words {quote}{word}{quote} and {quote}{other}{quote}", BannedWords((word, other))),
                     (f"avoiding the word {quote}{word}{quote}", BannedWords((word,)))])
    if kind == "required_words":
        return pick([(f"including the word {quote}{word}{quote}", RequiredWords((word,))),
                     (f"mentioning '{word}' and '{other}'", RequiredWords((word, other))),
                     (f"that uses the words {quote}{word}{quote} and {quote}{other}{quote}", RequiredWords((word, other)))])
    if kind == "max_word_length":
        m = draw(st.integers(3, 9))
        return pick([(f"in which no word is longer than {m} letters", MaxWordLength(m)),
                     (f"where every word has fewer than {spell(m + 1)} characters", MaxWordLength(m)),
                     (f"using only words of at most {m} letters", MaxWordLength(m))])
    if kind == "word_initial":
        return pick([(f"where every word starts with the letter {quote}{letter}{quote}", WordInitial(letter)),
                     (f"in which all words begin with '{letter}'", WordInitial(letter))])
    if kind == "segment_starts":
        return (f"that starts with the word {quote}{word.capitalize()}{quote}", SegmentStarts(word.capitalize()))
    assert kind == "last_words"
    return (f"that ends with the word {quote}{word}{quote}", LastWords((word,)))


SENTENCE_KINDS = ["word_count", "words_at", "banned_letters", "banned_words", "required_words", "max_word_length",
                  "word_initial", "segment_starts", "last_words"]


@given(data=st.data(), kinds=st.lists(st.sampled_from(SENTENCE_KINDS), min_size=2, max_size=2, unique=True),
       joiner=st.sampled_from([" and ", ", ", " "]))
def test_every_pair_of_sentence_constraints_parses_to_both(data, kinds, joiner):
    first, second = (phrasings(k, data.draw) for k in kinds)
    if {"word_count", "last_words"} <= set(kinds) and first[1].__dict__.get("min_words") == first[1].__dict__.get("max_words"):
        return  # an exact count turns "ends with w" into a word position; tested below
    task = f"Write a sentence about the sea {first[0]}{joiner}{second[0]}."
    unit, found = parse_prose(task)
    assert unit == "sentence"
    assert sorted(map(repr, found)) == sorted([repr(first[1]), repr(second[1])]), task
    assert [constraint_from_dict(c.to_dict()) for c in found] == found


COMPOUND = [
    ("Write a 9-word sentence about a bicycle without the letter e", "sentence(word_count(min_words=9, max_words=9), banned_letters(letters='e'))"),
    ("Write a sentence of 8 words that ends with the word 'home'.", "sentence(word_count(min_words=8, max_words=8), words_at(words_at={'8': 'home'}))"),
    ("Write an acrostic poem about the rain with one line per letter of RAIN, at most 6 words per line.",
     "lines(segment_words(min_words=None, max_words=6), acrostic(word='RAIN'))"),
    ("Write a paragraph of 3 sentences, each starting with 'Then'.", "paragraph(segment_count(n=3), segment_starts(word='Then'))"),
    ("Write 2 sentences without the word 'snow' where the first ends with 'gold' and the second ends with 'silver'.",
     "paragraph(banned_words(words=['snow']), last_words(words=['gold', 'silver']))"),
    ("Write a poem of four lines with five words in each line, without using the letters a and u.",
     "lines(segment_words(min_words=5, max_words=5), segment_count(n=4), banned_letters(letters='au'))"),
    ("Write a paragraph of two sentences, each with 6 to 9 words, mentioning 'copper' and 'violin'.",
     "paragraph(segment_words(min_words=6, max_words=9), segment_count(n=2), required_words(words=['copper', 'violin']))"),
]


@pytest.mark.parametrize("task, reading", COMPOUND)
def test_compound_tasks_are_read_whole(planner, task, reading):
    plan = planner.plan(task)
    assert (plan.program_name, plan.interpreted_as()) == ("composed", reading)


def test_checks_verify_the_whole_task(planner, lm):
    """Issue 24: 'every word starts with s' is not a banned letter, and sentences that must start
    with 'Then' are more than a sentence count."""
    from selfsteer.programs.compose import ComposedProgram

    plan = planner.plan("Write a sentence where every word starts with the letter s.")
    program = ComposedProgram(lm, "t", **plan.params)
    assert program.check("Seven silver swans sang softly.") and not program.check("Seven swans sang at dawn.")
    plan = planner.plan("Write a paragraph of 3 sentences, each starting with 'Then'.")
    program = ComposedProgram(lm, "t", **plan.params)
    assert program.check("Then it rained. Then we ran home. Then the sun came out.")
    assert not program.check("It rained. Then we ran home. Then the sun came out.")


@pytest.mark.parametrize("task, named", [
    ("Write a sentence of 8 words that rhymes with 'cat'.", "rhyme"),
    ("Write a haiku about autumn.", "syllable counts"),
    ("Write a sentence in all caps about dogs.", "letter case"),
    ("Write a sentence in French with exactly 6 words.", "another language"),
])
def test_constraints_outside_the_vocabulary_are_named(planner, task, named):
    with pytest.raises(NoProgramFits, match=f"asks for {named}, which .* vocabulary does not cover"):
        planner.plan(task)


def test_contradictions_are_named(planner):
    with pytest.raises(NoProgramFits, match="'violin' contains the banned letter 'i'"):
        planner.plan("Write a sentence including the word 'violin' without the letter i.")


def test_composed_source_is_a_valid_program_that_runs_the_same_class(planner):
    from selfsteer.planners.validate import validate_program

    plan = planner.plan("Write a 9-word sentence about a bicycle without the letter e")
    checked = validate_program(plan.source)
    assert checked.class_name == plan.class_name == "ComposedTask"
    assert "WordCount(min_words=9, max_words=9)" in plan.source and "BannedLetters(letters='e')" in plan.source


def test_plan_cli_shows_the_composed_program(capsys):
    from selfsteer.cli.main import main

    assert main(["plan", "Write a 9-word sentence about a bicycle without the letter e", "--planner", "library"]) == 0
    out = capsys.readouterr().out
    assert "# interpreted as: sentence(word_count(min_words=9, max_words=9), banned_letters(letters='e'))" in out
    assert "class ComposedTask(Composed):" in out


BARE_LISTS = [
    ("Write a sentence mentioning copper, orchard and violin.", ["copper", "orchard", "violin"]),
    ("Write a sentence that includes copper and violin.", ["copper", "violin"]),
    ("Write a sentence using the words copper, orchard and violin.", ["copper", "orchard", "violin"]),
    ("Compose a sentence about autumn including lantern, harbor, and whisper.", ["lantern", "harbor", "whisper"]),
]


@pytest.mark.parametrize("task, required", BARE_LISTS)
def test_unquoted_word_lists_are_required_words(planner, task, required):
    """Issue 18: an unquoted list after 'mentioning' / 'including' / 'using the words' is read as
    required words, and the first plan enforces every one of them."""
    assert parse_prose(task) == ("sentence", [RequiredWords(tuple(required))])
    plan = planner.plan(task)
    assert plan.program_name in ("sentence_including_words", "composed")
    words = plan.params.get("words") or plan.params["constraints"][0]["words"]
    assert list(words) == required


@pytest.mark.parametrize("task", ["Write a story including a dog and a cat.", "Write a sentence including rivers, which are long.",
                                  "Write a sentence of 50 characters, including spaces and punctuation."])
def test_prose_after_including_is_not_a_word_list(task):
    assert not [c for c in parse_prose(task)[1] if isinstance(c, RequiredWords)]


def test_library_extraction_failure_falls_back_to_the_composed_program(planner, monkeypatch):
    """Where no library program's parameters can be read but the vocabulary reads the task, the
    planner composes a program instead of failing."""
    import selfsteer.planners.library as library

    def unreadable(name, task):
        raise ExtractionError(f"{name}: unreadable")

    monkeypatch.setattr(library, "extract_params", unreadable)
    plan = LibraryPlanner(embedder=planner.embedder).plan("Write a sentence mentioning copper, orchard and violin.")
    assert plan.program_name == "composed"
    assert plan.interpreted_as() == "sentence(required_words(words=['copper', 'orchard', 'violin']))"
