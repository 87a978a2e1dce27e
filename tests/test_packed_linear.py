"""The CPU backend's oneDNN packed linears (`smc.lm.transformers.packed`): same numbers, scoped, never stale.

The backend packs by default on the CPU in float32, so every other transformers test also runs
the packed path against references computed outside it (`tiny_lm.uncached_logprobs`). Here:
packed against unpacked backends over one model, on the tiny Llama and the bundled SmolLM2;
the model untouched outside ``active()``; in-place weight updates (an optimizer step) and
replaced weights repacked; layers a hook library already wrapped left alone; bad options refused.
"""

import asyncio

import numpy as np
import pytest
import torch
from tiny_lm import bundled_tokenizer, tiny_model, uncached_logprobs

from selfsteer.smc import LMContext
from selfsteer.smc.lm.transformers import packed
from selfsteer.smc.lm.transformers.backend import TransformersLM

pytestmark = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="this PyTorch has no oneDNN")

PROMPT = "The lighthouse keeper"
FED = [1412, 282, 253, 1789, 30]


def backend(model, pack_linear):
    return TransformersLM(model, bundled_tokenizer(), name="tiny-llama", pack_linear=pack_linear)


async def next_logprobs_after(lm, tokens: list[int]) -> tuple[LMContext, np.ndarray]:
    ctx = LMContext(lm, PROMPT)
    for t in tokens:
        await ctx.append([t])
    return ctx, await ctx.next_logprobs()


def logprobs_after(lm, tokens=FED):
    return asyncio.run(next_logprobs_after(lm, tokens))


def linears(model):
    return [m for m in model.modules() if type(m) is torch.nn.Linear]


def test_this_build_runs_the_packed_path():
    assert packed.available()
    model = tiny_model(0)
    assert backend(model, None).packed_linears is not None
    assert backend(model, False).packed_linears is None
    assert packed.PackedLinears.of(model) is backend(model, True).packed_linears  # one packed copy per model


def test_packed_and_unpacked_backends_agree_and_leave_the_model_untouched():
    model = tiny_model(1)
    on, off = backend(model, True), backend(model, False)
    ctx, lp_on = logprobs_after(on)
    _, lp_off = logprobs_after(off)
    np.testing.assert_allclose(lp_on, lp_off, atol=2e-5)
    np.testing.assert_allclose(lp_on, uncached_logprobs(on, ctx)[-1], atol=2e-4)
    assert all("forward" not in m.__dict__ for m in linears(model))  # routed only inside active()
    assert on.packed_linears.layers == linears(model)


def test_sampled_chunks_are_the_same_tokens_packed_or_not():
    model = tiny_model(2)

    async def chunks(lm):
        dists = [LMContext(lm, PROMPT).chunk(max_tokens=12) for _ in range(4)]
        outs = await asyncio.gather(*(d.sample(np.random.default_rng(i)) for i, d in enumerate(dists)))
        return [chunk.token_ids for chunk, _ in outs]

    assert asyncio.run(chunks(backend(model, True))) == asyncio.run(chunks(backend(model, False)))


def test_an_optimizer_step_is_seen_at_the_next_forward():
    model = tiny_model(3)
    lm = backend(model, True)
    before = logprobs_after(lm)[1]
    model.train()
    loss = model(torch.tensor([FED])).logits.pow(2).mean()
    loss.backward()
    torch.optim.SGD(model.parameters(), lr=5.0).step()  # in place: the weights' version counters move
    model.eval()
    lm.prompt_cache.clear()  # as training.policy does after a step: cached prompts hold old keys
    ctx, after = logprobs_after(lm)
    assert np.abs(after - before).max() > 1e-2
    np.testing.assert_allclose(after, uncached_logprobs(lm, ctx)[-1], atol=2e-4)


def test_a_replaced_weight_is_repacked():
    model = tiny_model(4)
    lm = backend(model, True)
    logprobs_after(lm)
    layer = model.model.layers[0].mlp.down_proj
    layer.weight = torch.nn.Parameter(torch.randn_like(layer.weight))
    lm.prompt_cache.clear()
    ctx, lp = logprobs_after(lm)
    np.testing.assert_allclose(lp, uncached_logprobs(lm, ctx)[-1], atol=2e-4)


def test_layers_wrapped_by_a_hook_library_keep_their_forward():
    model = tiny_model(5)
    layer = model.model.layers[1].self_attn.o_proj
    calls = []
    original = layer.forward

    def hooked(x):
        calls.append(x.shape)
        return original(x)

    layer.forward = hooked  # what accelerate's add_hook_to_module does
    lm = backend(model, True)
    assert layer not in lm.packed_linears.layers
    logprobs_after(lm, FED[:2])
    assert calls and layer.forward is hooked


def test_autograd_on_is_refused():
    lm = backend(tiny_model(6), True)
    with pytest.raises(RuntimeError, match="autograd off"), lm.packed_linears.active():
        pass


def test_bad_options_name_the_fix():
    with pytest.raises(ValueError, match="pack_linear must be None"):
        backend(tiny_model(7), "yes")
    bf16 = tiny_model(7).to(torch.bfloat16)
    with pytest.raises(ValueError, match="float32 linear layers on the CPU.*pass pack_linear=None or False"):
        backend(bf16, True)
    assert backend(bf16, None).packed_linears is None  # default: used only where it applies


def test_bundled_model_packed_matches_unpacked(lm):
    assert lm.packed_linears is not None  # the default load packs on the CPU
    off = TransformersLM(lm.model, lm.tokenizer, name="unpacked", pack_linear=False)
    _, lp_on = logprobs_after(lm)
    _, lp_off = logprobs_after(off)
    np.testing.assert_allclose(lp_on, lp_off, atol=1e-4)
