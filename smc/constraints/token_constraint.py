"""A constraint spec lifted onto one LM's vocabulary: what a constrained span asks of it.

`TokenConstraint` wraps a spec's genlm byte potential in genlm's `Coerced` (a token sequence maps
to the concatenation of its tokens' bytes) and answers, for a span whose tokens are ``ids``:

- ``await viable(ids, t)``: may token ``t`` come next? An ordinary token must keep the text a
  prefix of some string in the language; an EOS token needs the text to be a full match; other
  special tokens, and tokens with bytes the language never uses, never qualify.
- ``await complete(ids)``, ``await exhausted(ids)``: the text is a full match; no longer string
  is in the language.
- ``await allowed(ids)``: all viable next tokens, a boolean array (V,). For a regex it is
  computed once per automaton state (a pruned walk of the token trie with genlm's
  ``Coerced.sparse_logw_next``) and then reused; otherwise it costs one check per candidate.
- ``route(method)`` and ``await mask_is_cheap(ids)``: which sampling route a span takes (see
  `ConstraintSpec`).

One `TokenConstraint` exists per (vocabulary, spec) and every particle shares it.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import numpy as np

from ..lm.vocab import Vocabulary
from . import genlm_adapter

if TYPE_CHECKING:
    from .specs import ConstraintSpec

SMALL_ALPHABET = 128  # "auto" checks every candidate token exactly when there are at most this many
MASK_WALK_LIMIT = 2048  # "auto" walks a regex state's tokens when at most this many start viably

_BOUND: weakref.WeakKeyDictionary[Vocabulary, dict] = weakref.WeakKeyDictionary()
_TRIES: weakref.WeakKeyDictionary[Vocabulary, dict] = weakref.WeakKeyDictionary()


def bound(spec: ConstraintSpec, vocab: Vocabulary) -> TokenConstraint:
    """The `TokenConstraint` of ``spec`` on ``vocab``, built on first use."""
    per_vocab = _BOUND.setdefault(vocab, {})
    key = (type(spec), spec.source)
    if key not in per_vocab:
        per_vocab[key] = TokenConstraint(spec, vocab)
    return per_vocab[key]


def token_trie(vocab: Vocabulary, ids: list[int], f) -> dict:
    """genlm's byte trie over the tokens ``ids`` (built once per vocabulary, shared by all specs)."""
    if vocab not in _TRIES:
        _TRIES[vocab] = genlm_adapter.coerced().build_trie(ids, f)
    return _TRIES[vocab]


class TokenConstraint:
    """A spec lifted onto one vocabulary (see the module docstring)."""

    def __init__(self, spec: ConstraintSpec, vocab: Vocabulary, *, max_cached_states: int = 512):
        self.spec = spec
        self._vocab = weakref.ref(vocab)  # no strong reference: `_BOUND` is keyed weakly by vocab
        self.size = vocab.size
        self.eos_set = vocab.eos_ids
        self.token_bytes = vocab.token_bytes
        self.ordinary_ids = [i for i, b in enumerate(vocab.token_bytes) if b and i not in vocab.special_ids]
        self.eos_ids = np.array(sorted(vocab.eos_ids))
        # Tokens a span may ever draw: EOS, and ordinary tokens whose bytes are all in the
        # potential's alphabet (genlm's Earley parser ignores bytes outside it, so they must go).
        alphabet = set(spec.byte_potential.vocab)
        self.candidates = np.zeros(vocab.size, dtype=bool)
        self.candidates[[i for i in self.ordinary_ids if set(self.token_bytes[i]) <= alphabet]] = True
        self.candidates[self.eos_ids] = True
        self.candidates.flags.writeable = False
        self._lifted: Any = None
        self._lifted_loop: weakref.ref | None = None
        self._loop_bound = spec.loop_bound
        self._masks: OrderedDict[frozenset, np.ndarray] = OrderedDict()
        self._cheap: dict[frozenset, bool] = {}
        self._first_byte_counts = np.bincount(
            [self.token_bytes[i][0] for i in self.ordinary_ids], minlength=256
        )
        self._max_cached_states = max_cached_states

    def __deepcopy__(self, memo):
        return self

    def route(self, method: str) -> str:
        """The sampling route for ``method``: "mask", "awrs" or "per-state" (see `ConstraintSpec`)."""
        if method != "auto":
            return method
        if self.spec.fast_masks:
            return "per-state"
        return "mask" if int(self.candidates.sum()) - len(self.eos_ids) <= SMALL_ALPHABET else "awrs"

    async def mask_is_cheap(self, ids: list[int]) -> bool:
        """For a regex: do at most `MASK_WALK_LIMIT` tokens start with a byte allowed after ``ids``?"""
        fsa = self.spec.byte_potential
        data = self.data(ids)
        key = fsa.state_key(data)
        if key not in self._cheap:
            weights = np.asarray((await fsa.logw_next(data)).weights[:-1])
            first_bytes = np.asarray(fsa.vocab)[weights == 0.0]
            self._cheap[key] = int(self._first_byte_counts[first_bytes].sum()) <= MASK_WALK_LIMIT
        return self._cheap[key]

    def data(self, ids) -> bytes:
        return b"".join(self.token_bytes[i] for i in ids)

    def lifted(self) -> Any:
        """genlm's `Coerced` potential over token ids (one per event loop for the JSON checker)."""
        if self._lifted is not None and not self._loop_bound:
            return self._lifted
        loop = asyncio.get_running_loop()
        if self._lifted is None or self._lifted_loop() is not loop:
            # a checker built in an earlier event loop cannot be awaited from this one
            fresh = self.spec._compile(self.spec.source) if self._loop_bound else self.spec.byte_potential
            self._lifted = genlm_adapter.coerced()(
                fresh, self.ordinary_ids, f=self.data, prune=False, homomorphic=True,
                trie=token_trie(self._vocab(), self.ordinary_ids, self.data) if self.spec.fast_masks else None,
            )
            self._lifted_loop = weakref.ref(loop)
        return self._lifted

    async def viable(self, ids: list[int], token: int) -> bool:
        if token in self.eos_set:
            return await self.complete(ids)
        if not self.candidates[token]:
            return False
        return await self.lifted().prefix([*ids, token]) == 0.0

    async def complete(self, ids: list[int]) -> bool:
        return await self.lifted().complete(list(ids)) == 0.0

    async def exhausted(self, ids: list[int]) -> bool:
        """True when no longer string is in the language (call it on complete text)."""
        if self._loop_bound:
            return False  # JSON admits trailing whitespace after any complete document
        byte_potential = self.spec.byte_potential
        weights = (await byte_potential.logw_next(self.data(ids))).weights
        return not np.any(np.asarray(weights[:-1]) == 0.0)

    async def allowed(self, ids: list[int]) -> np.ndarray:
        """Boolean (V,) array of the viable next tokens, EOS included when the text is complete."""
        if self.spec.fast_masks:
            return await self._fsa_allowed(ids)
        out = np.zeros(self.size, dtype=bool)
        for t in np.flatnonzero(self.candidates):
            out[t] = await self.viable(ids, int(t))
        return out

    async def _fsa_allowed(self, ids: list[int]) -> np.ndarray:
        fsa = self.spec.byte_potential
        key = fsa.state_key(self.data(ids))
        if key in self._masks:
            self._masks.move_to_end(key)
            return self._masks[key]
        out = np.zeros(self.size, dtype=bool)
        walk = await self.lifted().sparse_logw_next(list(ids))
        if walk is not None:  # None: the text is no viable prefix
            indices, _, eos = walk
            out[np.asarray(self.ordinary_ids)[np.asarray(indices, dtype=int)]] = True
            out[self.eos_ids] = eos == 0.0
        out.flags.writeable = False
        self._masks[key] = out
        if len(self._masks) > self._max_cached_states:
            self._masks.popitem(last=False)
        return out
