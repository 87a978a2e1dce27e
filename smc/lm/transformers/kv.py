"""The KV store behind the transformers backend.

Particles' sequences share most of their keys and values, so the store keeps three kinds of
pieces:

- `Segment`: KV of a prompt (one row), computed once and shared by every sequence that starts
  with it. A sequence's *prefix* is a chain of segments.
- `Block`: KV of many sequences' own tokens, one row per sequence, preallocated with spare
  columns. Rows may have holes (columns a row never wrote); a boolean ``valid`` matrix on the
  device says which columns each row attends to, positions count only valid columns, and
  ``lengths`` keeps those counts on the host, so building positions or gathering rows never
  reads the device.
- `Handle`: an immutable pointer (prefix, block, row, length) that a context holds; it sees the
  row's first ``length`` valid columns, so a row extended later for another holder of the same
  row never changes what an earlier handle reads.

Ownership gives copy-on-write: each row records the last handle issued for it (its owner), by
weak reference, so that a block and its handles never form a reference cycle: a block nobody
holds a handle to is freed at once by reference counting (a cycle would keep its buffers, on a
GPU its device memory, until Python's cycle collector happened to run). A
batch whose handles own exactly the rows of one block, in order, is extended in place. Anything
else (a resampled population with repeated or reordered rows, a subset, several blocks, copies of
a context) is first gathered into a new, compacted block with one index-select per layer, and
only then extended. Resampling therefore reorders caches by index, never recomputing them.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers.cache_utils import Cache, CacheLayerMixin


class Segment:
    """KV of a shared prompt piece: per layer ``(1, H, length, D)``."""

    def __init__(self, keys: list[torch.Tensor], values: list[torch.Tensor]):
        self.keys, self.values = keys, values
        self.length = keys[0].shape[2] if keys else 0

    def nbytes(self) -> int:
        return sum(k.numel() * k.element_size() * 2 for k in self.keys)


Prefix = tuple[Segment, ...]


def prefix_length(prefix: Prefix) -> int:
    return sum(s.length for s in prefix)


@dataclass(frozen=True, eq=False)
class Handle:
    """Where a sequence's KV lives: a shared prefix plus (optionally) the first ``length`` valid
    columns of one row of a block."""

    prefix: Prefix
    block: Block | None = None
    row: int = -1
    length: int = 0

    def __deepcopy__(self, memo):
        return self

    @property
    def owns_row(self) -> bool:
        """The last handle issued for its row, which holds nothing past it: safe to extend in place."""
        b = self.block
        if b is None:
            return False
        owner = b.owners[self.row]
        return owner is not None and owner() is self and b.lengths[self.row] == self.length


@dataclass(eq=False)
class Block:
    """Per-layer ``(rows, H, capacity, D)`` buffers for the own tokens of many sequences."""

    prefix: Prefix
    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    valid: torch.Tensor  # (rows, capacity) bool
    width: int = 0  # columns written so far (the next write starts here)
    lengths: list[int] = field(default_factory=list)  # valid columns per row, kept on the host
    owners: list[weakref.ref[Handle] | None] = field(default_factory=list)  # the last handle issued per row
    split_prefix: bool = False  # True: layers return only own keys; attention reads the prefix itself
    _prefix_cat: dict[int, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict, repr=False)

    def prefix_kv(self, layer: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """This layer's prefix keys and values as one ``(1, H, P, D)`` pair (None when there is no prefix)."""
        if not self.prefix:
            return None, None
        if len(self.prefix) == 1:
            return self.prefix[0].keys[layer], self.prefix[0].values[layer]
        if layer not in self._prefix_cat:
            self._prefix_cat[layer] = (
                torch.cat([s.keys[layer] for s in self.prefix], dim=2),
                torch.cat([s.values[layer] for s in self.prefix], dim=2),
            )
        return self._prefix_cat[layer]

    @property
    def rows(self) -> int:
        return self.valid.shape[0]

    @property
    def capacity(self) -> int:
        return self.valid.shape[1]

    def reserve(self, extra: int) -> None:
        """Make room for ``extra`` more columns (doubling the capacity when full)."""
        need = self.width + extra
        if need <= self.capacity:
            return
        cap = max(2 * self.capacity, need + 16)
        for store in (self.keys, self.values):
            for i, t in enumerate(store):
                grown = t.new_zeros(t.shape[0], t.shape[1], cap, t.shape[3])
                grown[:, :, : self.width] = t[:, :, : self.width]
                store[i] = grown
        valid = self.valid.new_zeros(self.rows, cap)
        valid[:, : self.width] = self.valid[:, : self.width]
        self.valid = valid

    def nbytes(self) -> int:
        return sum(k.numel() * k.element_size() * 2 for k in self.keys)


def new_block(prefix: Prefix, rows: int, capacity: int, like: list[torch.Tensor]) -> Block:
    """An empty block shaped after the per-layer tensors ``like`` (H and D per layer)."""
    keys = [t.new_zeros(rows, t.shape[1], capacity, t.shape[3]) for t in like]
    values = [t.new_zeros(rows, t.shape[1], capacity, t.shape[3]) for t in like]
    valid = torch.zeros(rows, capacity, dtype=torch.bool, device=like[0].device)
    return Block(prefix, keys, values, valid, 0, [0] * rows, [None] * rows)


def upload(host: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``host`` copied to ``device`` without making the host wait for the device.

    On CUDA: one non-blocking copy from pinned memory (the caching host allocator keeps the pinned
    buffer until the copy has run). A blocking copy from pageable memory would synchronise the
    stream. Elsewhere: a plain ``to`` (a no-op on the CPU).
    """
    if device.type == "cuda":
        host = host.pin_memory()
    return host.to(device, non_blocking=True)


def gather_rows(prefix: Prefix, handles: list[Handle], extra: int, like: list[torch.Tensor]) -> Block:
    """A new block whose row i holds ``handles[i]``'s own tokens, left-aligned, plus ``extra`` free columns."""
    lengths = [h.length for h in handles]  # 0 for a handle with no block
    n_max = max(lengths, default=0)
    out = new_block(prefix, len(handles), n_max + extra + 8, like)
    out.lengths = lengths
    by_block: dict[int, tuple[Block, list[int]]] = {}
    for i, h in enumerate(handles):
        if h.block is not None and lengths[i] > 0:
            by_block.setdefault(id(h.block), (h.block, []))[1].append(i)
    for src, dest in by_block.values():
        src_rows, dest_t = upload(torch.tensor([[handles[i].row for i in dest], dest]), src.valid.device)
        if all(lengths[i] == src.width for i in dest):  # no holes: a plain index-select per layer
            n = src.width
            for layer in range(len(like)):
                out.keys[layer][dest_t, :, :n] = src.keys[layer].index_select(0, src_rows)[:, :, :n]
                out.values[layer][dest_t, :, :n] = src.values[layer].index_select(0, src_rows)[:, :, :n]
            out.valid[dest_t, :n] = True
            continue
        # holes, or a handle that sees less than its row now holds: each row's first valid columns, to the left
        valid = src.valid[src_rows, : src.width]
        n = max(lengths[i] for i in dest)
        order = torch.argsort((~valid).to(torch.int8), dim=1, stable=True)[:, :n]  # valid columns first
        for layer in range(len(like)):
            for store, src_store in ((out.keys, src.keys), (out.values, src.values)):
                rows_kv = src_store[layer].index_select(0, src_rows)[:, :, : src.width]
                idx = order[:, None, :, None].expand(-1, rows_kv.shape[1], -1, rows_kv.shape[3])
                store[layer][dest_t, :, :n] = rows_kv.gather(2, idx)
        seen = upload(torch.tensor([lengths[i] for i in dest]), valid.device)
        out.valid[dest_t, :n] = torch.arange(n, device=valid.device)[None, :] < seen[:, None]
    out.width = n_max
    return out


class BlockLayer(CacheLayerMixin):
    """One transformer layer's view of a block during a forward pass (writes in place)."""

    is_sliding = False

    def __init__(self, block: Block, layer: int):
        super().__init__()
        self.block, self.layer = block, layer
        self.is_initialized = True

    def lazy_initialization(self, key_states, value_states) -> None:  # pragma: no cover - never lazy
        pass

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        b, layer = self.block, self.layer
        q = key_states.shape[2]
        w = b.width
        b.keys[layer][:, :, w : w + q] = key_states
        b.values[layer][:, :, w : w + q] = value_states
        keys = b.keys[layer][:, :, : w + q]
        values = b.values[layer][:, :, : w + q]
        if b.prefix and not b.split_prefix:
            rows = keys.shape[0]
            keys = torch.cat([s.keys[layer].expand(rows, -1, -1, -1) for s in b.prefix] + [keys], dim=2)
            values = torch.cat([s.values[layer].expand(rows, -1, -1, -1) for s in b.prefix] + [values], dim=2)
        return keys, values

    def get_seq_length(self) -> int:
        return prefix_length(self.block.prefix) + self.block.width

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.get_seq_length() + query_length, 0

    def get_max_length(self) -> int:
        return -1


class BlockCache(Cache):
    """A transformers `Cache` that routes every layer's update into one `Block`."""

    def __init__(self, block: Block, n_layers: int):
        super().__init__(layers=[BlockLayer(block, i) for i in range(n_layers)])


class PromptCache:
    """LRU map from prompt token tuples to (prefix chain, next-token logits), bounded in tokens."""

    def __init__(self, max_tokens: int = 65536):
        self.max_tokens = max_tokens
        self._entries: OrderedDict[tuple[int, ...], tuple[Prefix, Any]] = OrderedDict()

    def get(self, tokens: tuple[int, ...]) -> tuple[Prefix, Any] | None:
        hit = self._entries.get(tokens)
        if hit is not None:
            self._entries.move_to_end(tokens)
        return hit

    def longest_prefix(self, tokens: tuple[int, ...]) -> tuple[tuple[int, ...], Prefix] | None:
        """The longest cached proper prefix of ``tokens`` and its chain."""
        best = None
        for key, (chain, _) in self._entries.items():
            if len(key) < len(tokens) and tokens[: len(key)] == key and (best is None or len(key) > len(best[0])):
                best = (key, chain)
        if best is not None:
            self._entries.move_to_end(best[0])
        return best

    def put(self, tokens: tuple[int, ...], chain: Prefix, logits: Any) -> None:
        self._entries[tokens] = (chain, logits)
        self._entries.move_to_end(tokens)
        while sum(len(k) for k in self._entries) > self.max_tokens and len(self._entries) > 1:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()
