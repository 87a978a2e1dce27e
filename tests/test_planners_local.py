"""The local planner LM writes through selfsteer's own LM layer (here the bundled SmolLM2-135M
stands in for Qwen2.5-Coder, which the tests never download)."""

from __future__ import annotations

import numpy as np
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


SYSTEM = "You write Python programs. " * 40  # a static part long enough to matter


@pytest.mark.slow
def test_static_prompt_parts_are_prefilled_once_and_kept_on_disk(lm, tmp_path):
    import asyncio

    from selfsteer.smc import LMContext

    first = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Task: add two numbers."}]
    second = [first[0], {"role": "user", "content": "Task: reverse a list of words."}]
    lm.prompt_cache.clear()
    chat = LocalChat(lm, max_new_tokens=2, progress=False, kv_dir=tmp_path)
    (static,) = chat.static_prefixes(second)
    full = lm.prompt_ids(second)
    assert full[: len(static)] == static and len(static) > 150 and len(full) - len(static) < 30
    chat(first)
    assert chat.last_stats["prefill_tokens"] == len(lm.prompt_ids(first))  # static part + tail, once each
    before = lm.n_forward_tokens
    chat(second)  # a new task: only its tail is prefilled
    assert chat.last_stats["prefill_tokens"] == len(full) - len(static)
    assert lm.n_forward_tokens - before < len(full) - len(static) + 2 * chat.max_new_tokens + 2
    assert len(list(tmp_path.glob("*.pt"))) == 1
    # a new process (here: an emptied prompt cache) reads the static part from disk
    lm.prompt_cache.clear()
    fresh = LocalChat(lm, max_new_tokens=2, progress=False, kv_dir=tmp_path)
    before = lm.n_forward_tokens
    asyncio.run(fresh.prime(second))
    assert lm.n_forward_tokens == before
    from_disk = asyncio.run(LMContext(lm, second).next_logprobs())
    lm.prompt_cache.clear()
    recomputed = asyncio.run(LMContext(lm, second).next_logprobs())
    assert np.allclose(from_disk, recomputed, atol=1e-3)


@pytest.mark.slow
def test_a_prompt_with_examples_counts_each_static_token_once(lm):
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Task: a."},
                {"role": "assistant", "content": "```python\npass\n```"}, {"role": "user", "content": "Task: b."}]
    lm.prompt_cache.clear()
    chat = LocalChat(lm, max_new_tokens=1, progress=False)
    system, through_example = chat.static_prefixes(messages)
    assert len(system) < len(through_example) and through_example[: len(system)] == system
    chat(messages)
    assert chat.last_stats["prefill_tokens"] == len(lm.prompt_ids(messages))
