"""Host-device synchronisation points of the transformers backend, counted on CPU with
`tools.host_syncs.SyncCounter` (its docstring says what counts and what it cannot see)."""


from __future__ import annotations

import asyncio
import copy
from collections import Counter

import numpy as np
import pytest
import torch
from tiny_lm import tiny_lm
from tools.host_syncs import SyncCounter

from selfsteer.smc import LMContext, TextModel
from selfsteer.smc.inference import smc_async

N, STEPS = 4, 8  # particles, tokens per chunk / token steps


@pytest.fixture(scope="module")
def tiny(one_thread):
    # the CUDA path counted here packs no linear layers (the CPU's oneDNN packed linears are
    # torch.ops calls, which the counter's TorchFunctionMode does not see)
    return tiny_lm(0, pack_linear=False)


def test_counter_classifies_calls(tiny):
    lm = tiny
    x = torch.ones(3)  # made before counting: a device tensor
    with SyncCounter(lm) as c:
        y = (x * 2).to(torch.int8).to(x.device)  # dtype change, device to device: no sync
        host = torch.tensor([1, 2, 3])
        assert not c.on_device(host) and c.on_device(y)
        bool(y.any())
        y.cpu().tolist()  # one transfer; the host copy's tolist is free
        torch.from_numpy(np.ones(2)).to(lm.device, non_blocking=True)
        torch.tensor([1, 2], device=lm.device)
        y[host > 1]
        y[y > 1]
    assert [s.op for s in c.syncs] == [
        "__bool__",
        "cpu to host",
        "tensor(data, device=...) blocking upload",
        "__getitem__ mixes host and device tensors",
        "__getitem__ data-dependent shape",
    ]
    assert c.uploads == {"non_blocking": 1}


def counted(lm, scenario) -> SyncCounter:
    with SyncCounter(lm) as counter:
        asyncio.run(scenario())
    by_site = Counter((s.owner, s.op, s.where) for s in counter.syncs)
    print(
        f"\n{scenario.__name__}: selfsteer {counter.count('selfsteer')} sync points (at most "
        f"{counter.per_forward('selfsteer')} between forwards), transformers {counter.count('transformers')}, "
        f"other {counter.count('other')}; uploads {dict(counter.uploads)}; by site {dict(by_site)}"
    )
    return counter


@pytest.mark.parametrize("shared_prefix", [True, False])
def test_fused_chunk_syncs_once_per_token(tiny, shared_prefix, monkeypatch):
    """N particles sample a T-token chunk, then a second one (which first feeds the pending token):
    one sync per sampled token (the ids with their log-probs and masses), none in transformers."""
    lm = tiny
    monkeypatch.setattr(lm, "_shared_prefix_attention", shared_prefix)
    lm.prompt_cache.clear()

    async def two_chunks():
        ctxs = [LMContext(lm, "Once upon a time") for _ in range(N)]
        for _ in range(2):
            dists = [c.chunk(max_tokens=STEPS, allow_eos=False) for c in ctxs]
            draws = await asyncio.gather(
                *(d.sample(np.random.default_rng(i)) for i, d in enumerate(dists))
            )
            for d, (chunk, _) in zip(dists, draws, strict=True):
                assert len(chunk.token_ids) == STEPS
                d.record(chunk)

    counter = counted(lm, two_chunks)
    assert counter.count("selfsteer") == 2 * STEPS, counter.syncs
    assert counter.per_forward("selfsteer") == 1
    assert counter.calls["linear"] > 0, "the counter sees the model's own calls"
    assert counter.count("transformers") == counter.count("other") == 0, (
        "transformers 5.23 syncs nowhere here"
    )
    assert counter.uploads["blocking"] == 0


def test_token_steps_sync_once_per_step(tiny):
    """N contexts on one prompt take T next-token steps, resampled (duplicates, reordering) midway:
    one sync per step (the next-token log-distributions), none for the prompt's N first feeds or
    the gather, none in transformers."""
    lm = tiny
    lm.prompt_cache.clear()
    rng = np.random.default_rng(0)

    async def token_steps():
        ctxs = [LMContext(lm, "The cat") for _ in range(N)]
        for step in range(STEPS):
            lps = await asyncio.gather(*(c.next_logprobs() for c in ctxs))
            for c, lp in zip(ctxs, lps, strict=True):
                c.append_token(int(rng.choice(len(lp), p=np.exp(lp) / np.exp(lp).sum())))
            if step == STEPS // 2:
                ctxs = [copy.deepcopy(ctxs[i]) for i in (0, 0, 3, 1)]

    counter = counted(lm, token_steps)
    assert counter.count("selfsteer") == STEPS, counter.syncs
    assert counter.per_forward("selfsteer") == 1
    assert counter.calls["linear"] > 0, "the counter sees the model's own calls"
    assert counter.count("transformers") == counter.count("other") == 0, (
        "transformers 5.23 syncs nowhere here"
    )
    assert counter.uploads["blocking"] == 0


def test_masked_token_steps_read_back_only_the_draws(tiny):
    """N particles of a TextModel take T masked next-token steps through `smc`, resampled at every
    step: the tokens are drawn on the device, so each step syncs once and reads back three numbers
    per particle (id, log-probability, mask mass), never a vocabulary of log-probabilities."""
    lm = tiny
    lm.prompt_cache.clear()

    class NoE(TextModel):
        def __init__(self):
            super().__init__(lm, "The cat", max_tokens=STEPS)
            self.mask = lm.masks.without("eE")

        async def step(self):
            await self.next_token(mask=self.mask)
            if self.n_tokens == STEPS:
                self.finish(self.text)

    async def run():
        result = await smc_async(NoE(), N, seed=0, ess_threshold=1.0)
        assert result.n_resamples > 0 and all(len(p.prior.generated_ids) == STEPS for p in result.particles)

    counter = counted(lm, run)
    assert counter.count("selfsteer") == STEPS, counter.syncs
    assert counter.per_forward("selfsteer") == 1
    assert all(s.elements == 3 * N for s in counter.syncs), counter.syncs
    assert counter.count("transformers") == counter.count("other") == 0
    assert counter.uploads["blocking"] == 0
