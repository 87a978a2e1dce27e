"""The vLLM backend, run only where vLLM is installed and CUDA is present (skipped elsewhere)."""

import asyncio

import numpy as np
import pytest

vllm = pytest.importorskip("vllm", reason="vLLM is not installed (GPU-only optional extra selfsteer[vllm])")
torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.vllm, pytest.mark.skipif(not torch.cuda.is_available(), reason="vLLM needs CUDA")]


@pytest.fixture(scope="module")
def vlm():
    from selfsteer.smc import load_lm

    return load_lm(backend="vllm")


def test_feed_matches_transformers(vlm, lm):
    from selfsteer.smc import LMContext

    async def both():
        a, b = LMContext(vlm, "The cat sat on the"), LMContext(lm, "The cat sat on the")
        return await a.next_logprobs(), await b.next_logprobs()

    x, y = asyncio.run(both())
    top = np.argsort(y)[-20:]
    assert np.abs(x[top] - y[top]).max() < 0.05  # bf16 vs float32


def test_chunks_stop_where_the_stop_rule_says(vlm):
    from selfsteer.smc import LMContext

    async def go():
        ctx = LMContext(vlm, "Count: one, two,")
        return await asyncio.gather(*(ctx.chunk(stop=",", max_tokens=10).sample(np.random.default_rng(i)) for i in range(8)))

    for chunk, _ in asyncio.run(go()):
        assert chunk.stop_reason in ("stop", "eos", "max_tokens")
        if chunk.stop_reason == "stop":
            assert "," in chunk.text
