"""The planner prompt is generated from the live code: docstrings, signatures, the validator's
allow-lists; few-shot examples leave out the task's family; a retry carries the error."""

from __future__ import annotations

import inspect

import pytest

from selfsteer.planners.allowlist import SAFE_BUILTINS, allowed_imports
from selfsteer.planners.examples import Example, library_programs, pick_examples
from selfsteer.planners.prompt import build_messages, system_prompt
from selfsteer.smc import Model, TextModel
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
