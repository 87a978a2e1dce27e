"""The local planner LM writes through selfsteer's own LM layer (here the bundled SmolLM2-135M
stands in for Qwen2.5-Coder, which the tests never download)."""

from __future__ import annotations

import pytest

from selfsteer.planners.local import LocalChat


@pytest.mark.slow
def test_local_chat_generates_within_budget_and_each_call_is_a_fresh_sample(lm):
    chat = LocalChat(lm, max_new_tokens=6, temperature=1.0, progress=False)
    messages = [{"role": "user", "content": "Write a Python function that adds two numbers."}]
    first, second = chat(messages), chat(messages)
    assert isinstance(first, str) and 1 <= chat.last_stats["tokens"] <= 6 and chat.last_stats["tokens_per_s"] > 0
    assert chat.n_calls == 2
    again = LocalChat(lm, max_new_tokens=6, temperature=1.0, progress=False)
    assert [again(messages), again(messages)] == [first, second]  # the seed fixes the sequence of completions



def test_models_without_a_chat_template_get_plain_text(exact_lm):
    prompt = LocalChat(exact_lm, progress=False).prompt([{"role": "system", "content": "s"}, {"role": "user", "content": "u"}])
    assert prompt == "SYSTEM:\ns\n\nUSER:\nu\n\nASSISTANT:\n"
