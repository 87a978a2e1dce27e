"""The grammar of planner programs (`selfsteer.planners.program_grammar`) accepts programs in the
allowed subset and rules out forbidden imports, names and attributes by construction."""

from __future__ import annotations

import asyncio

import pytest

from selfsteer.planners.allowlist import allowed_imports
from selfsteer.planners.program_grammar import ProgramWriter, program_grammar
from selfsteer.planners.validate import validate_program
from selfsteer.smc import Grammar

GOOD = '''from selfsteer.programs.base import LibraryProgram
from selfsteer.programs.text import count_words, is_one_sentence

class Seven(LibraryProgram):
    """A sentence of 7 words.

    Strategy: prose tokens. Step granularity: one token. End conditions: end mark, then EOS."""
    PRIOR = "Write a sentence about mountains."
    def __init__(self, lm, task):
        super().__init__(lm, task, max_tokens=40)
        self.n_words = 7

    async def step(self):
        n = count_words(self.text)
        tok = await self.prose_token(new_word=n < self.n_words, end=n >= self.n_words)
        if tok.text in (".", "!", "?"):
            await self.end()

    def check(self, output):
        return is_one_sentence(output) and count_words(output) == self.n_words
'''


@pytest.fixture(scope="module")
def spec():
    return Grammar(program_grammar())


def viable(spec, text: str, *, whole: bool) -> bool:
    """Prefix (or full-match) check, fed in steps so the Earley charts build up incrementally."""
    data = list(text.encode())
    potential = spec.byte_potential
    for end in range(64, len(data), 64):
        if asyncio.run(potential.prefix(data[:end])) != 0:
            return False
    check = potential.complete if whole else potential.prefix
    return asyncio.run(check(data)) == 0


def test_the_grammar_accepts_a_program_of_the_subset_that_validates(spec):
    validate_program(GOOD)
    assert viable(spec, GOOD, whole=True)
    assert not viable(spec, GOOD[: GOOD.index("    def check")], whole=True)  # check() is required


@pytest.mark.parametrize("bad", [
    "import os\n", "from os import path\n", "from selfsteer.smc import open\n",
    "from selfsteer.smc import TextModel\n\nclass P(TextModel):\n    \"\"\"x\"\"\"\n    def __init__(self, lm, task):\n        self.__class__",
    "from selfsteer.smc import TextModel\n\nclass P(TextModel):\n    \"\"\"x\"\"\"\n    def __init__(self, lm, task):\n        self._lm",
    "from selfsteer.smc import TextModel\n\nclass P(TextModel):\n    \"\"\"x\"\"\"\n    def __init__(self, lm, task):\n        __import__",
    "from selfsteer.smc import TextModel\n\nclass P(object):\n",
])
def test_the_grammar_rules_out_what_the_validator_forbids(spec, bad):
    assert not viable(spec, bad, whole=False)


def test_import_lines_follow_the_allow_list():
    text = program_grammar()
    for module, names in allowed_imports().items():
        assert f'"from {module} import "' in text
        assert all(f'"{n}"' in text for n in names)


def test_the_writer_fails_check_for_programs_the_validator_rejects(exact_lm):
    writer = ProgramWriter(exact_lm, "a", max_tokens=4)
    assert writer.check(GOOD) and not writer.check(GOOD.replace("count_words(output)", "open(output)"))


@pytest.mark.slow
def test_text_written_under_the_grammar_stays_grammatical(lm, spec):
    from selfsteer.planners.local import LocalChat
    from selfsteer.smc import smc

    messages = [{"role": "user", "content": "Write a selfsteer program for: a sentence without the letter e."}]
    result = smc(ProgramWriter(lm, messages, max_tokens=12), 2, seed=0)
    texts = [p.prior.text for p in result.particles]
    assert all(len(t) >= 5 for t in texts) and all(viable(spec, t, whole=False) for t in texts), texts
    chat = LocalChat(lm, max_new_tokens=4, grammar=True, grammar_particles=1, progress=False)
    assert chat(messages) == "" and chat.last_stats["tokens"] > 0  # no program fits in 4 tokens: nothing, not garbage
