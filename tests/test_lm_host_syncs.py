"""Host-device synchronisation points of the transformers backend, counted on CPU.

No GPU is available to these tests, so they count *sync points*: the Python-level torch calls that
would make the host wait for a CUDA device, were the model on one. A `SyncCounter` (a
`TorchFunctionMode`) follows every tensor's provenance during a run:

- "device" tensors: everything that existed before counting started (weights, caches, prompt
  cache) and everything computed from a device tensor or created with ``device=<the device>``;
- "host" tensors: those created inside the run without a device (``torch.tensor(list)``,
  ``torch.from_numpy``), results of host-only computation, and copies brought back to the host.

The device is named by `torch.device` objects read off device tensors (``t.device``) or the LM's
``device`` attribute; any other device spelling (``"cpu"``) is the host. A sync point is then:
a scalar read of a device tensor (``item``, ``bool``, ``int``, ``float``, ``index``), ``tolist``,
``numpy``, ``__array__``, ``cpu``, a ``to``/``copy_`` from the device to the host, a blocking
``to``/``copy_`` or ``torch.tensor(data, device=...)`` from the host to the device (pageable
copies synchronise the stream on CUDA), an op mixing a device tensor with a non-scalar host
tensor (CUDA would copy or refuse it), and ops whose output shape depends on device data
(``nonzero``, ``masked_select``, ``unique``, boolean-mask indexing).

What it cannot see: synchronisation inside CUDA kernels or libraries (cuBLAS/cuDNN workspace
set-up, ``cudaMalloc``/``cudaFree`` when the caching allocator grows or frees, pinned-memory
allocation), syncs inside C++ ops not listed above, and anything ``torch.compile`` would
change. Counts are attributed to selfsteer or transformers by the innermost calling frame.
"""

from __future__ import annotations

import asyncio
import copy
import traceback
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_lm import tiny_lm
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten
from torch.utils.weak import WeakIdKeyDictionary

from selfsteer.smc import LMContext, TextModel
from selfsteer.smc.inference import smc_async

T = torch.Tensor
READS = {T.item, T.__bool__, T.__int__, T.__float__, T.__index__, T.tolist, T.numpy, T.__array__}
DATA_DEPENDENT = {
    torch.nonzero,
    T.nonzero,
    torch.masked_select,
    T.masked_select,
    torch.unique,
    T.unique,
    torch.argwhere,
    T.argwhere,
}
DATA_FACTORIES = {torch.tensor, torch.as_tensor, torch.asarray}


@dataclass(frozen=True)
class Sync:
    op: str
    owner: str  # "selfsteer" | "transformers" | "other"
    where: str  # file:line of the innermost caller outside torch
    forward: int  # how many forward passes the LM had made when it happened
    elements: int = 0  # for a copy to the host: how many elements it brings back


class SyncCounter(TorchFunctionMode):
    """Records `Sync` points while active (see the module docstring for what counts)."""

    def __init__(self, lm):
        super().__init__()
        self.lm = lm
        self.host = WeakIdKeyDictionary()
        # torch.device objects that name the device, compared by identity (kept alive: ids stay unique)
        self.devices = [lm.device]
        self.syncs: list[Sync] = []
        self.uploads = Counter()  # host->device copies, "blocking" or "non_blocking"
        self.calls = Counter()  # every call seen, by name (shows the mode sees inside the model)

    def __enter__(self):
        self._from_numpy = torch.from_numpy  # not routed through torch-function modes: wrap it

        def from_numpy(a):
            out = self._from_numpy(a)
            self.host[out] = True
            return out

        torch.from_numpy = from_numpy
        return super().__enter__()

    def __exit__(self, *exc):
        torch.from_numpy = self._from_numpy
        return super().__exit__(*exc)

    def on_device(self, t: torch.Tensor) -> bool:
        return t not in self.host

    def names_device(self, d) -> bool:
        return any(d is x for x in self.devices)

    def record(self, op: str, elements: int = 0) -> None:
        frame = next(
            f
            for f in reversed(traceback.extract_stack()[:-2])
            if "/torch/" not in f.filename and f.filename != __file__
        )
        owner = (  # selfsteer first: its backend lives in smc/lm/transformers/
            "selfsteer"
            if "/smc/" in frame.filename
            else ("transformers" if "/transformers/" in frame.filename else "other")
        )
        self.syncs.append(
            Sync(op, owner, f"{Path(frame.filename).name}:{frame.lineno}", self.lm.n_forward, elements)
        )

    def tag(self, out, device: bool) -> None:
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                if device:
                    self.host.pop(t, None)
                else:
                    self.host[t] = True

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        tensors = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        on_dev = [self.on_device(t) for t in tensors]
        name = getattr(func, "__name__", str(func))
        self.calls[name] += 1
        if func == T.device.__get__:
            if on_dev[0]:
                self.devices.append(out)
            return out
        if func in READS:
            if on_dev[0]:
                self.record(name)
            return out
        if func in (T.cpu, T.to, T.copy_):
            src, dst_dev = (
                (args[1], self.on_device(args[0]))
                if func is T.copy_
                else (args[0], self.target(func, args, kwargs))
            )
            if dst_dev is None:  # a dtype change: stays where it is
                self.tag(out, self.on_device(src))
                return out
            if self.on_device(src) and not dst_dev:
                self.record(name + " to host", src.numel())
                out = (
                    out.clone() if out is src else out
                )  # a real device would return a new host tensor
            elif not self.on_device(src) and dst_dev:
                blocking = not (kwargs.get("non_blocking") or any(a is True for a in args[1:]))
                self.uploads["blocking" if blocking else "non_blocking"] += 1
                if blocking:
                    self.record(name + " blocking upload")
            self.tag(out, dst_dev)
            return out
        device_kw = kwargs.get("device")
        if func in DATA_FACTORIES:
            if device_kw is not None and self.names_device(device_kw):
                self.record(name + "(data, device=...) blocking upload")
            elif any(on_dev):
                self.record(name + " of device tensors")
            self.tag(out, device_kw is not None and self.names_device(device_kw))
            return out
        if func in DATA_DEPENDENT or (
            name in ("__getitem__", "__setitem__") and self.bool_index(args, on_dev)
        ):
            self.record(name + " data-dependent shape")
        elif any(on_dev) and any(
            not d and t.dim() > 0 for t, d in zip(tensors, on_dev, strict=True)
        ):
            self.record(name + " mixes host and device tensors")
        device_out = (
            any(on_dev) if tensors else (device_kw is not None and self.names_device(device_kw))
        )
        self.tag(out, device_out)
        return out

    def target(self, func, args, kwargs) -> bool | None:
        """Whether a cpu()/to() call moves data to the device (True), the host (False), or nowhere (None)."""
        if func is T.cpu:
            return False
        for a in (kwargs.get("device"), *args[1:]):
            if isinstance(a, torch.Tensor):
                return self.on_device(a)
            if isinstance(a, (torch.device, str)):
                return self.names_device(a)
        return None

    def bool_index(self, args, on_dev) -> bool:
        index = args[1] if len(args) > 1 else None
        parts = index if isinstance(index, tuple) else (index,)
        return any(
            isinstance(p, torch.Tensor) and p.dtype == torch.bool and self.on_device(p)
            for p in parts
        )

    def count(self, owner: str) -> int:
        return sum(s.owner == owner for s in self.syncs)

    def per_forward(self, owner: str) -> int:
        """The most sync points of ``owner`` between two consecutive forward passes."""
        by_step = Counter(s.forward for s in self.syncs if s.owner == owner)
        return max(by_step.values(), default=0)


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
