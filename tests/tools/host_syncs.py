"""`SyncCounter`: host-device synchronisation points of the transformers backend, counted on CPU.

Without a GPU, tests count *sync points*: the Python-level torch calls that
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

import traceback
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten
from torch.utils.weak import WeakIdKeyDictionary

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
        owner = (
            "selfsteer"  # selfsteer's own transformers backend lives under smc/lm/transformers/
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
