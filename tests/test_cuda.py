"""The transformers backend on CUDA: skipped without a GPU, run on the GPU machine a session is lent.

The tiny random Llama (`tiny_lm`, float32 unless a test says otherwise) on CUDA is held to the same
weights on the CPU, uncached: cached feeds, copies, forced appends and chunks must give the CPU's
log-probabilities, with the prompt copied into each row or attended to once (two-part attention);
the device's token draws must pick the CPU's tokens for the same uniforms; a whole SMC run must
make the host wait for the device once per step (CUDA's own sync detector,
``torch.cuda.set_sync_debug_mode``, counts it) and give back every byte of device memory it took
without the cycle collector's help; ``load_lm`` on CUDA must default to bfloat16 and run chunks.
"""

from __future__ import annotations

import asyncio
import copy
import gc
import math
import traceback
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_lm import fixed_tokens, save_tiny_model, tiny_lm, uncached_logprobs

from selfsteer.smc import LMContext, TextModel, load_lm, smc
from selfsteer.smc.lm.transformers.sampling import draw_tokens

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]

TOL = 1e-3  # float32 on two devices, cached against uncached


@pytest.fixture(scope="module")
def pair():
    """The same tiny model on the CPU and on CUDA."""
    return tiny_lm(seed=3), tiny_lm(seed=3, device="cuda")


@pytest.mark.parametrize("copy_prefix_bytes", [0, None], ids=["two-part attention", "prompt copied"])
def test_cached_feeds_copies_appends_and_chunks_match_the_cpu(pair, copy_prefix_bytes, monkeypatch):
    cpu, gpu = pair
    if copy_prefix_bytes is not None:  # None: the default, which copies these short prompts
        monkeypatch.setattr(gpu, "copy_prefix_bytes", copy_prefix_bytes)

    async def scenario() -> list[float]:
        ctxs = [LMContext(gpu, "The lighthouse", temperature=t) for t in (1.0, 0.7)]
        ctxs.append(LMContext(gpu, "The lighthouse keeper"))  # extends the first prompt's cached prefix
        errors = [float(np.abs(lp - uncached_logprobs(cpu, c)[-1]).max())
                  for c, lp in zip(ctxs, await asyncio.gather(*(c.next_logprobs() for c in ctxs)), strict=True)]
        rng = np.random.default_rng(0)
        for step in range(6):
            ctxs.append(copy.deepcopy(ctxs[step % len(ctxs)]))  # a copy shares its original's row
            for c in ctxs:
                c.append_token(int(rng.integers(100, 5000)))
            lps = await asyncio.gather(*(c.next_logprobs() for c in ctxs))
            errors += [float(np.abs(lp - uncached_logprobs(cpu, c)[-1]).max()) for c, lp in zip(ctxs, lps, strict=True)]
        chunk_dist = ctxs[0].chunk(max_tokens=5, allow_eos=False)
        forced = [700, 701, 702]
        (chunk, _), forced_lps = await asyncio.gather(
            chunk_dist.sample(np.random.default_rng(1)), ctxs[1].append(forced)
        )
        chunk_dist.record(chunk)
        ref = uncached_logprobs(cpu, ctxs[1])[-len(forced) - 1 : -1]
        errors.append(float(np.abs(ref[np.arange(len(forced)), forced] - forced_lps).max()))
        ref = uncached_logprobs(cpu, ctxs[0])[-len(chunk.token_ids) - 1 : -1]
        errors.append(float(np.abs(ref[np.arange(len(chunk.token_ids)), chunk.token_ids] - chunk.token_logprobs).max()))
        lps = await asyncio.gather(*(c.next_logprobs() for c in ctxs))
        return errors + [float(np.abs(lp - uncached_logprobs(cpu, c)[-1]).max()) for c, lp in zip(ctxs, lps, strict=True)]

    errors = asyncio.run(scenario())
    assert len(errors) > 50 and max(errors) < TOL, max(errors)


def test_device_draws_pick_the_cpu_draws_tokens():
    g = torch.Generator().manual_seed(0)
    rows, vocab = 64, 49152
    logits = torch.randn(rows, vocab, generator=g) * 4
    log_mask = torch.where(torch.rand(1, vocab, generator=g) < 0.5, 0.0, -math.inf)
    uniforms = torch.rand(rows, dtype=torch.float64, generator=g)
    temps = [0.7] * (rows // 2) + [1.0] * (rows // 2)
    on_cpu = draw_tokens(logits, temps, log_mask, uniforms)
    on_gpu = draw_tokens(logits.cuda(), temps, log_mask.cuda(), uniforms.cuda())
    same = [a[0] == b[0] for a, b in zip(on_cpu, on_gpu, strict=True)]
    assert sum(same) >= rows - 1  # float sums in another order may move a draw across one boundary
    assert all(log_mask[0, t] == 0 for t, _, _ in on_gpu)  # only allowed tokens
    for a, b, s in zip(on_cpu, on_gpu, same, strict=True):
        assert b[2] == pytest.approx(a[2], abs=1e-5)  # the allowed set's log-mass
        if s:
            assert b[1] == pytest.approx(a[1], abs=1e-5)


def test_an_smc_run_waits_for_the_device_once_per_step(pair):
    _, gpu = pair
    smc(fixed_tokens(gpu, 4), 8, seed=0)  # warm-up: cuBLAS handles, the prompt cache, pinned buffers
    torch.cuda.synchronize()
    stacks: list[list[traceback.FrameSummary]] = []

    def record(message, category, filename, lineno, file=None, line=None):
        if "called a synchronizing CUDA operation" in str(message):  # not the mode switch's own notice
            stacks.append(traceback.extract_stack()[:-1])

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = record
        torch.cuda.set_sync_debug_mode("warn")
        try:
            result = smc(fixed_tokens(gpu, 16), 32, seed=1, ess_threshold=1.0)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    where = Counter(f"{Path(s[-1].filename).name}:{s[-1].lineno}" for s in stacks)
    detail = "\n\n".join("".join(traceback.format_list(s[-8:])) for s in stacks if "sampling.py" not in s[-1].filename)
    assert result.n_steps == 16 and result.n_resamples >= 4  # resampling reorders rows on the device
    assert len(stacks) <= result.n_steps, f"{where}\n{detail}"  # one read-back per step: the sampled ids


def test_device_memory_is_given_back_after_each_run(pair):
    _, gpu = pair
    smc(fixed_tokens(gpu, 12), 32, seed=0, ess_threshold=1.0)  # warm-up: prompt cache, mask cache
    gc.collect()
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    gc.disable()
    try:
        for seed in (1, 2):
            result = smc(fixed_tokens(gpu, 12), 32, seed=seed, ess_threshold=1.0)
            assert result.n_resamples >= 4
            held = torch.cuda.memory_allocated()
            del result
            torch.cuda.synchronize()
            assert held > before  # the finished particles' block
            assert torch.cuda.memory_allocated() == before  # freed by reference counting
    finally:
        gc.enable()


def test_load_lm_on_cuda_defaults_to_bfloat16_and_runs_chunks(tmp_path):
    lm = load_lm(str(save_tiny_model(tmp_path / "tiny", seed=4)), device="cuda")
    assert lm.device.type == "cuda" and next(lm.model.parameters()).dtype == torch.bfloat16

    class Chunks(TextModel):
        def __init__(self):
            super().__init__(lm, "Tell me a story.", max_tokens=8)

        async def step(self):
            await self.extend(max_tokens=8, allow_eos=False)
            self.finish(self.text)

    result = smc(Chunks(), 8, seed=0)
    assert all(p.finished and p.n_tokens == 8 for p in result.particles)
    assert math.isfinite(result.log_ml)

    async def rescored() -> float:
        ctx = LMContext(lm, "Tell me a story.")
        dist = ctx.chunk(max_tokens=8, allow_eos=False)
        chunk, _ = await dist.sample(np.random.default_rng(0))
        again = await LMContext(lm, "Tell me a story.").append(list(chunk.token_ids))
        return float(np.abs(np.asarray(chunk.token_logprobs) - again).max())

    assert asyncio.run(rescored()) < 0.1  # bfloat16: batched and forced paths round differently


def test_forwards_on_cuda_keep_off_cudnn_attention(pair):
    """cuDNN's SDPA builds a plan per new shape (every decoding step is one): the backend's own
    forwards leave it out, and leave the global setting as they found it."""
    _, gpu = pair
    seen = []
    hook = gpu.model.register_forward_hook(lambda *_: seen.append(torch.backends.cuda.cudnn_sdp_enabled()))
    try:
        before = torch.backends.cuda.cudnn_sdp_enabled()
        smc(fixed_tokens(gpu, 3), 1, seed=0)  # one row: attention through SDPA
    finally:
        hook.remove()
    assert seen and not any(seen)
    assert torch.backends.cuda.cudnn_sdp_enabled() == before
