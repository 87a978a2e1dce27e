"""The vLLM backend (`VLLMLM`) run on CPU through a stand-in of vLLM's public API.

vLLM cannot be installed here (it needs CUDA), so `vllm_standin` takes its place: the subset of
vLLM's public API that `VLLMLM` uses (``LLM``, ``SamplingParams``, ``inputs.TokensPrompt``, the
output objects, ``get_tokenizer``, ``llm_engine.model_config``), following vLLM's documented and
source-level semantics (see its docstring) and backed by the real bundled SmolLM2-135M-Instruct
in float32. Fixtures put it in ``sys.modules`` for this module only, so ``tests/test_vllm.py``
still skips without real vLLM.

What this checks: that `VLLMLM` maps the `LanguageModel` contract onto vLLM's API correctly
(which parameters it sends, how it reads log-probs, prompt log-probs, stop strings, stop tokens,
seeds and handles), by comparing numbers with the transformers backend on the same model.
What it does not check: real vLLM (its kernels, bf16 numerics, batching, prefix caching,
tensor parallelism, version drift of its API); `tests/test_vllm.py` covers that on a GPU.
"""

import asyncio
import sys

import numpy as np
import pytest

from selfsteer.smc import TextModel, load_lm, smc
from selfsteer.smc.lm.base import StopRule
from selfsteer.smc.lm.loading import ModelNotFound
from selfsteer.smc.lm.vllm import VLLMLM

pytestmark = pytest.mark.contract  # against a stand-in of vLLM's API, not vLLM itself

TOL = 1e-4  # float32 on CPU: a plain forward (stand-in) against the cached backend

CHAT = [{"role": "user", "content": "List three fruits, separated by commas."}]


@pytest.fixture(scope="module")
def standin():
    from tools import vllm_standin

    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(sys.modules, "vllm", vllm_standin)
        mp.setitem(sys.modules, "vllm.inputs", vllm_standin.inputs)
        yield vllm_standin


@pytest.fixture(scope="module")
def vlm(standin):
    return load_lm(backend="vllm")


def run(coro):
    return asyncio.run(coro)


def token_logprobs(lm, ids, temperature=1.0):
    """log p(ids[i] | ids[:i]) for i >= 1 under ``lm`` (its own feed with prompt scoring)."""
    return run(lm.feed(None, ids, temperature)).token_logprobs


def replay(vocab, tokens, stop=(), max_tokens=64, max_chars=None):
    """Where `StopRule` ends a chunk made of ``tokens``: (number of tokens, reason)."""
    rule = StopRule(tuple(stop), max_tokens, max_chars)
    for n, t in enumerate(tokens, 1):
        reason = rule.update(vocab.token_bytes[t], t in vocab.eos_ids, n)
        if reason is not None:
            return n, reason
    return len(tokens), None


def test_load_lm_builds_a_vllm_engine_with_the_expected_options(vlm, lm):
    assert isinstance(vlm, VLLMLM) and vlm.name == "SmolLM2-135M-Instruct"
    opts = vlm.llm.options
    assert opts["enable_prefix_caching"] is True and opts["tensor_parallel_size"] == 1
    assert opts["dtype"] == "auto" and opts["max_logprobs"] == -1
    assert opts["logprobs_mode"] == "processed_logprobs"
    other = load_lm(backend="vllm", dtype="bfloat16", tensor_parallel_size=2).llm.options
    assert other["dtype"] == "bfloat16" and other["tensor_parallel_size"] == 2
    assert vlm.vocab.size == lm.vocab.size and vlm.vocab.eos_ids == lm.vocab.eos_ids
    for prompt in ("The cat sat", CHAT):
        assert vlm.prompt_ids(prompt) == lm.prompt_ids(prompt)


def test_load_lm_without_vllm_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # `import vllm` raises ImportError
    with pytest.raises(ModelNotFound, match=r"pip install 'selfsteer\[vllm\]'"):
        load_lm(backend="vllm")


@pytest.mark.parametrize("temperature", [1.0, 0.7, 2.5])
def test_next_token_logprobs_match_transformers(vlm, lm, temperature):
    ids = lm.prompt_ids(CHAT)
    ours = run(vlm.feed(None, ids, temperature, want_token_logprobs=False))
    ref = run(lm.feed(None, ids, temperature, want_token_logprobs=False))
    assert ours.handle == tuple(ids)
    assert np.abs(ours.next_logprobs - ref.next_logprobs).max() < TOL
    assert abs(np.logaddexp.reduce(ours.next_logprobs.astype(np.float64))) < TOL


def test_feeds_ask_for_flat_logprobs_which_hold_what_the_list_format_holds(vlm, standin):
    from selfsteer.smc.lm.base import FeedRequest

    ids = vlm.prompt_ids("The cat sat on the")
    [(prompt, params)] = vlm._vllm_requests(FeedRequest(None, ids, 1.0, want_token_logprobs=False))
    assert params.flat_logprobs and params.logprobs == vlm.n_logits  # no Logprob object per entry
    listed = standin.SamplingParams(max_tokens=2, seed=3, logprobs=5, prompt_logprobs=2)
    flat = standin.SamplingParams(max_tokens=2, seed=3, logprobs=5, prompt_logprobs=2, flat_logprobs=True)
    a, b = (vlm.llm.generate([standin.inputs.TokensPrompt(prompt_token_ids=ids)], p)[0] for p in (listed, flat))
    assert isinstance(b.outputs[0].logprobs, standin.FlatLogprobs) and isinstance(a.outputs[0].logprobs, list)
    assert list(b.outputs[0].logprobs) == a.outputs[0].logprobs and len(b.outputs[0].logprobs) == 2
    assert b.prompt_logprobs[0] == {} and a.prompt_logprobs[0] is None  # as in vLLM: no entries for the first
    assert [b.prompt_logprobs[j] for j in range(1, len(ids))] == a.prompt_logprobs[1:]


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_fed_tokens_logprobs_match_transformers(vlm, lm, temperature):
    prompt, text = lm.prompt_ids(CHAT), lm.encode("Apple, banana, cherry.")
    short = run(vlm.feed(None, prompt[:6], temperature))  # a first feed, scored
    assert np.abs(short.token_logprobs - token_logprobs(lm, prompt[:6], temperature)).max() < TOL
    first = run(vlm.feed(None, prompt, temperature, want_token_logprobs=False))
    more = run(vlm.feed(first.handle, text, temperature))
    expected = token_logprobs(lm, prompt + text, temperature)[-(len(text) - 1) :]
    assert more.handle == tuple(prompt + text) and len(more.token_logprobs) == len(text) - 1
    assert np.abs(more.token_logprobs - expected).max() < TOL
    ref = run(lm.feed(None, prompt + text, temperature))
    assert np.abs(more.next_logprobs - ref.next_logprobs).max() < TOL


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_chunks_end_where_the_stop_rule_says(vlm, lm, temperature):
    prompt = lm.prompt_ids("Fruits: apple, pear, plum, fig, kiwi,")
    start = run(vlm.feed(None, prompt, temperature))

    kw = dict(temperature=temperature, stop=[","], max_tokens=12, next_logprobs=start.next_logprobs)

    async def chunks():  # concurrent: one batch
        rngs = [np.random.default_rng(seed) for seed in range(4)]
        return await asyncio.gather(*(vlm.generate(start.handle, [], r, **kw) for r in rngs))

    reasons = set()
    for res in run(chunks()):
        n, reason = replay(vlm.vocab, res.tokens, stop=[","], max_tokens=12)
        assert (n, reason) == (len(res.tokens), res.stop_reason)
        reasons.add(reason)
        assert res.handle == tuple(prompt + res.tokens[:-1])
        seq = prompt + res.tokens
        expected = token_logprobs(lm, seq, temperature)[-len(res.tokens) :]
        assert np.abs(res.token_logprobs - expected).max() < TOL
        nxt = run(vlm.feed(res.handle, res.tokens[-1:], temperature)).next_logprobs
        assert np.abs(nxt - run(lm.feed(None, seq, temperature)).next_logprobs).max() < TOL
    assert "stop" in reasons


def test_chunks_end_at_max_chars_and_multi_token_stop_strings(vlm, lm):
    prompt = lm.prompt_ids(CHAT)
    for kw in ({"max_chars": 5}, {"stop": ["an"]}, {"stop": [":\n\n1"]}):  # vLLM knows no max_chars
        for seed in range(2):
            res = run(vlm.generate(None, prompt, np.random.default_rng(seed), max_tokens=10, **kw))
            ends = (len(res.tokens), res.stop_reason)
            assert replay(vlm.vocab, res.tokens, max_tokens=10, **kw) == ends
            assert res.stop_reason == "max_chars" or "max_chars" not in kw
            assert res.handle == tuple(prompt + res.tokens[:-1])


def test_disallowed_eos_falls_back_to_token_by_token_sampling(vlm, lm):
    prompt = lm.prompt_ids([{"role": "user", "content": "Say yes."}])
    eos = lm.masks.eos.array
    res = run(vlm.generate(None, prompt, np.random.default_rng(0), max_tokens=6, disallowed=eos))
    assert res.tokens and not any(t in lm.vocab.eos_ids for t in res.tokens)
    expected_mass = sum(
        np.logaddexp.reduce(
            run(lm.feed(None, prompt + res.tokens[:k])).next_logprobs[~eos].astype(np.float64)
        )
        for k in range(len(res.tokens))
    )
    assert res.log_mask_mass < 0
    assert abs(res.log_mask_mass - expected_mass) < 1e-3
    expected = token_logprobs(lm, prompt + res.tokens)[-len(res.tokens) :]
    assert np.abs(res.token_logprobs - expected).max() < TOL


def test_temperature_vllm_cannot_sample_at_falls_back(vlm, lm):
    prompt = lm.prompt_ids(CHAT)
    res = run(vlm.generate(None, prompt, np.random.default_rng(0), temperature=2.5, max_tokens=4))
    expected = token_logprobs(lm, prompt + res.tokens, 2.5)[-len(res.tokens) :]
    assert np.abs(res.token_logprobs - expected).max() < TOL


def test_seeds_fix_chunks(vlm, lm):
    prompt = lm.prompt_ids(CHAT)

    def chunk(seed):
        return run(vlm.generate(None, prompt, np.random.default_rng(seed), max_tokens=5)).tokens

    assert chunk(1) == chunk(1)
    assert len({tuple(chunk(seed)) for seed in range(4)}) > 1


class ForcedAnswer(TextModel):
    """Deterministic: forced text and EOS; with a separate proposal, the prior scores the text
    through `feed`'s token log-probs, so log_ml = log p_prior(text, EOS)."""

    def __init__(self, lm, temperature):
        super().__init__(
            lm, "Name a fruit.", proposal="Name a fruit. Answer: Apple.", temperature=temperature
        )

    async def step(self):
        await self.extend_with("Apple is a fruit.")
        await self.end()


class OneClause(TextModel):
    """One chunk up to a comma or full stop, drawn from a proposal and weighted to the prior."""

    def __init__(self, lm):
        super().__init__(lm, "Name a fruit.", proposal="Name a red fruit.", max_tokens=12)

    async def step(self):
        await self.extend(stop=[",", "."], max_tokens=8)
        if self.prior.ended:
            self.finish(self.text)
        else:
            await self.end()


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_forced_smc_run_has_the_transformers_log_ml(vlm, lm, temperature):
    ours = smc(ForcedAnswer(vlm, temperature), 1, seed=0)
    ref = smc(ForcedAnswer(lm, temperature), 1, seed=0)
    assert ours.outputs == ref.outputs == ["Apple is a fruit."]
    assert np.isfinite(ours.log_ml) and abs(ours.log_ml - ref.log_ml) < 1e-3


def test_smc_with_chunks_finishes_with_finite_weights(vlm, lm):
    results = [smc(OneClause(model), 4, seed=0) for model in (vlm, vlm, lm)]
    for result in results:
        assert result.status == "completed"
        assert np.isfinite(result.log_ml) and np.all(np.isfinite(result.log_weights))
        assert all(isinstance(o, str) for o in result.outputs)
    assert results[0].outputs == results[1].outputs  # a seed fixes the run
