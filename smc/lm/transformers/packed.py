"""Float32 linear layers on the CPU through oneDNN, with weights packed once.

A decoding step multiplies a few rows by every weight matrix. PyTorch's default float32 product
on the CPU (MKL's sgemm) is slow at that shape on some processors, where oneDNN's linear with the
weight reordered once into its blocked layout comes close to what memory traffic allows (numbers
in benchmarks/README.md). The products are the same up to float rounding. The kernels are
PyTorch's own ``torch.ops.mkldnn`` linear ops (what ``torch.compile`` uses for frozen CPU weights);
`available` checks a build has them and agrees with ``F.linear`` before they are used.

`PackedLinears.of(model)` routes the model's plain ``nn.Linear`` layers (float32, CPU; subclasses
such as adapters, and layers whose forward a hook library already replaced, are left alone)
through packed copies of their weights, only inside its ``active()`` block: outside it, and for
every other caller of the model, nothing changes. Cost: one more copy of those weights in memory,
one per model however many backends share it. A weight changed in place (an optimizer step,
``load_state_dict``) or replaced is repacked at the next ``active()``; gradients never flow through
the packed path (it runs only with autograd off).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from weakref import WeakKeyDictionary

import torch
from torch import nn

Forward = Callable[[torch.Tensor], torch.Tensor]


def _pack(weight: torch.Tensor) -> torch.Tensor:
    return torch.ops.mkldnn._reorder_linear_weight(weight.detach(), None)


def _packed_linear(x: torch.Tensor, packed: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return torch.ops.mkldnn._linear_pointwise(x, packed, bias, "none", [], "")


@cache
def available() -> bool:
    """Whether this PyTorch build runs oneDNN's packed linear and agrees with ``F.linear``."""
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        gen = torch.Generator().manual_seed(0)
        w, b = torch.randn(24, 40, generator=gen), torch.randn(24, generator=gen)
        x = torch.randn(3, 5, 40, generator=gen)
        with torch.inference_mode():
            got = _packed_linear(x, _pack(w), b)
        return bool(torch.allclose(got, nn.functional.linear(x, w, b), atol=1e-4, rtol=1e-4))
    except (RuntimeError, AttributeError):
        return False


def packable(model: nn.Module) -> bool:
    """Whether `PackedLinears` would route any of ``model``'s layers (float32 on the CPU, oneDNN present)."""
    return available() and any(_eligible(m) for m in model.modules())


def _eligible(module: nn.Module) -> bool:
    w = getattr(module, "weight", None)
    return (
        type(module) is nn.Linear and "forward" not in module.__dict__
        and w is not None and w.dtype == torch.float32 and w.device.type == "cpu"
    )


_OF_MODEL: WeakKeyDictionary[nn.Module, PackedLinears] = WeakKeyDictionary()


class PackedLinears:
    """Packed copies of ``model``'s eligible linear weights, used inside `active` (see the module docstring)."""

    @classmethod
    def of(cls, model: nn.Module) -> PackedLinears:
        """The packed linears of ``model``, shared by every backend over it."""
        if model not in _OF_MODEL:
            _OF_MODEL[model] = cls(model)
        return _OF_MODEL[model]

    def __init__(self, model: nn.Module):
        if not available():
            raise RuntimeError(
                "this PyTorch build cannot run oneDNN's packed linear (torch.backends.mkldnn is missing "
                "or disagrees with F.linear); pass pack_linear=False"
            )
        self.layers = [m for m in model.modules() if _eligible(m)]
        self._packed: dict[int, tuple[tuple[int, int], Forward]] = {}

    def _forward_of(self, layer: nn.Linear) -> Forward | None:
        """``layer``'s packed forward, repacked if its weight changed in place or was replaced; None
        if the layer no longer qualifies (moved off the CPU, cast, or its forward hooked since)."""
        w = layer.weight  # read once: nn.Module attribute lookups dominate this per-forward check
        if "forward" in layer.__dict__ or w.dtype != torch.float32 or not w.is_cpu:
            return None
        key = (w.data_ptr(), w._version)
        hit = self._packed.get(id(layer))
        if hit is not None and hit[0] == key:
            return hit[1]
        packed = _pack(w)

        def forward(x: torch.Tensor) -> torch.Tensor:
            return _packed_linear(x, packed, layer.bias)

        self._packed[id(layer)] = (key, forward)
        return forward

    @contextmanager
    def active(self) -> Iterator[None]:
        """Route the layers through their packed weights for the block (autograd must be off)."""
        if torch.is_grad_enabled():
            raise RuntimeError("PackedLinears.active() needs autograd off (torch.inference_mode or no_grad)")
        routed = []
        for layer in self.layers:  # the instance dict directly: nn.Module's __setattr__ costs more than the rest
            forward = self._forward_of(layer)
            if forward is not None:
                layer.__dict__["forward"] = forward
                routed.append(layer)
        try:
            yield
        finally:
            for layer in routed:
                del layer.__dict__["forward"]
