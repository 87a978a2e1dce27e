"""KV reuse for LAG on the bundled model (transformers, float32, CPU).

Tolerance: 2e-4 on log-probabilities and 1e-3 on keys/values (whose entries reach ~20); the two
paths run the same float32 arithmetic in different batch shapes, which differ by ~4e-5.
"""

import asyncio

import numpy as np
import pytest
import torch

from selfsteer.smc import LMContext
from selfsteer.smc.scaling import LogMemory, LogStore
from selfsteer.smc.scaling.lag_kv import (
    conversation_ids,
    encode_log,
    install_logs,
    log_messages,
    shift_keys,
)

LOG = log_messages("What is 2 + 2?", "2 plus 2 makes 4.\n<answer>4</answer>\n<confidence>0.9</confidence>")
LOG2 = log_messages("What is 5 - 1?", "5 minus 1 leaves 4.\n<answer>4</answer>\n<confidence>0.8</confidence>")
QUESTION = {"role": "user", "content": "What is 3 + 4?"}
TOL = 2e-4


async def first_steps(lm, messages, seed=0):
    """Next-token log-probs of the prompt, then a 10-token continuation sampled with ``seed``."""
    ctx = LMContext(lm, messages)
    lp = np.array(await ctx.next_logprobs())
    chunk, _ = await ctx.chunk(max_tokens=10).sample(np.random.default_rng(seed))
    return lp, chunk


async def score(lm, messages, ids):
    return await LMContext(lm, messages).append(list(ids))


def test_a_reused_log_is_equivalent_to_re_encoding_its_text(lm, tmp_path):
    store = LogStore(tmp_path)
    entry = store.add("What is 2 + 2?", LOG[0]["content"], LOG[1]["content"], "correct", np.ones(3),
                      kv=encode_log(lm, LOG), model=lm.name)
    messages = [*LOG, QUESTION]
    n_prompt = len(lm.prompt_ids(messages))

    lm.prompt_cache.clear()
    kv = LogStore(tmp_path).load_kv(LogStore(tmp_path).entries()[0])  # from disk, as after a restart
    assert entry.has_kv and install_logs(lm, [(LOG, kv)]) == 1
    before = lm.n_forward_tokens
    lp_reused, chunk_reused = asyncio.run(first_steps(lm, messages))
    prompt_tokens_reused = lm.n_forward_tokens - before
    scored_reused = asyncio.run(score(lm, messages, chunk_reused.token_ids))

    lm.prompt_cache.clear()
    before = lm.n_forward_tokens
    lp_fresh, chunk_fresh = asyncio.run(first_steps(lm, messages))
    prompt_tokens_fresh = lm.n_forward_tokens - before
    lm.prompt_cache.clear()
    scored_fresh = asyncio.run(score(lm, messages, chunk_reused.token_ids))

    assert np.abs(lp_reused - lp_fresh).max() < TOL
    assert chunk_reused.token_ids == chunk_fresh.token_ids
    assert abs(chunk_reused.log_p - chunk_fresh.log_p) < TOL * len(chunk_reused.token_ids)
    assert np.abs(scored_reused - scored_fresh).max() < TOL
    # the reused run encoded only the question, not the log
    assert prompt_tokens_fresh - prompt_tokens_reused == len(kv.token_ids)
    assert len(kv.token_ids) < n_prompt


def test_shifted_keys_equal_keys_encoded_at_the_offset(lm):
    kv = encode_log(lm, LOG)
    offset = 37
    with torch.inference_mode():
        out = lm.model(input_ids=torch.tensor([kv.token_ids]), use_cache=True,
                       position_ids=torch.arange(offset, offset + len(kv.token_ids))[None])
    layers = out.past_key_values.layers
    for shifted, layer in zip(shift_keys(lm.model, kv.keys, offset), layers, strict=True):
        assert torch.allclose(shifted, layer.keys, atol=1e-3, rtol=1e-4)
    for values, layer in zip(kv.values, layers, strict=True):
        assert torch.allclose(values, layer.values, atol=1e-3, rtol=1e-4)
    back = shift_keys(lm.model, shift_keys(lm.model, kv.keys, offset), -offset)
    assert all(torch.allclose(a, b, atol=1e-4) for a, b in zip(back, kv.keys, strict=True))


def test_two_logs_are_placed_one_after_the_other(lm):
    kv1, kv2 = encode_log(lm, LOG), encode_log(lm, LOG2)
    lm.prompt_cache.clear()
    assert install_logs(lm, [(LOG, kv1), (LOG2, kv2)]) == 2
    both = conversation_ids(lm, [*LOG, *LOG2])
    chain, _ = lm.prompt_cache.get(tuple(both))
    assert [s.length for s in chain] == [len(kv1.token_ids), len(both) - len(kv1.token_ids)]
    piece = len(both) - len(kv1.token_ids)
    src = len(kv2.token_ids) - piece  # log 2's own preamble is left out
    assert kv2.token_ids[src:] == both[len(kv1.token_ids):]
    assert torch.equal(chain[1].values[0], kv2.values[0][:, :, src:])
    moved = shift_keys(lm.model, [kv2.keys[0][:, :, src:]], len(kv1.token_ids) - src)[0]
    assert torch.allclose(chain[1].keys[0], moved)
    before = lm.n_forward_tokens
    lp, _ = asyncio.run(first_steps(lm, [*LOG, *LOG2, QUESTION]))
    assert lm.n_forward_tokens - before == len(lm.prompt_ids([*LOG, *LOG2, QUESTION])) - len(both) + 10 - 1
    assert np.isclose(np.exp(lp).sum(), 1.0, atol=1e-4)


def test_a_log_that_does_not_fit_the_layout_is_encoded_as_text(lm):
    kv = encode_log(lm, LOG)
    lm.prompt_cache.clear()
    with pytest.warns(UserWarning, match="tokens differ"):
        assert install_logs(lm, [(LOG2, kv)]) == 0
    with pytest.warns(UserWarning, match="no usable stored KV"):
        assert install_logs(lm, [(LOG, kv), (LOG2, None)]) == 1


def test_log_memory_records_and_recalls_with_kv(lm, tmp_path):
    def embed(texts):  # stand-in embedder: arithmetic questions point one way, others another
        return np.array([[1.0, 0.1] if any(c.isdigit() for c in t) else [0.1, 1.0] for t in texts])

    memory = LogMemory(tmp_path, embed, k=1, outcomes=("correct",))
    memory.record(lm, "Name a colour.", "Name a colour.", "Blue.", "correct")
    memory.record(lm, "What is 2 + 2?", LOG[0]["content"], LOG[1]["content"], "correct")
    memory.record(lm, "What is 9 + 9?", "What is 9 + 9?", "17", "wrong")
    lm.prompt_cache.clear()
    recall = memory.recall(lm, "What is 3 + 4?")
    assert [e.task for e in recall.logs] == ["What is 2 + 2?"] and recall.n_kv_reused == 1
    assert recall.examples == [(LOG[0]["content"], LOG[1]["content"])]
    assert lm.prompt_cache.get(tuple(conversation_ids(lm, LOG))) is not None


def test_backends_without_kv_use_text_logs(exact_lm, tmp_path):
    with pytest.raises(TypeError, match="transformers backend"):
        install_logs(exact_lm, [(LOG, None)])
    memory = LogMemory(tmp_path, lambda texts: np.ones((len(texts), 2)), outcomes=None)
    entry = memory.record(exact_lm, "a", "a", "b", "unverified")
    assert not entry.has_kv
    recall = memory.recall(exact_lm, "a")
    assert recall.n_kv_reused == 0 and recall.examples == [("a", "b")]
