"""Constraint specs (`Regex`, `Grammar`, `JsonSchema`) and their form on one LM's vocabulary.

A spec names a language of byte strings; genlm-control supplies its boolean byte-level potential
(`BoolFSA` for a regex, `BoolCFG` for a Lark grammar, `JsonSchema` for a JSON schema).
`TokenConstraint` lifts that potential onto an LM's token ids with genlm's `Coerced` (a token
sequence maps to the concatenation of its tokens' bytes) and answers what a constrained span
needs:

- ``await viable(ids, t)``: may token ``t`` follow the span's tokens ``ids``? An ordinary token
  must keep the text a prefix of some string in the language; an EOS token needs the text to be a
  full match; other special tokens never qualify.
- ``await complete(ids)``, ``await exhausted(ids)``: the text is a full match; no longer string
  is in the language.
- ``await allowed(ids)``: the whole set of viable next tokens, a boolean array (V,). For a regex
  it is computed once per automaton state (one pruned walk of the token trie with genlm's
  ``Coerced.sparse_logw_next``) and then reused; for grammars and schemas it costs one check per
  token, so spans of those kinds sample by AWRS instead (see `selfsteer.smc.lm.awrs`).

Specs compare by value and compile once per process (a cache keyed by their source), so writing
``Regex(r"...")`` inside ``step()`` costs nothing after the first time. The first spec of a
process imports genlm-control (a few seconds).
"""

from __future__ import annotations

import asyncio
import json
import weakref
from collections import OrderedDict
from functools import lru_cache
from typing import Any

import numpy as np

from .vocab import Vocabulary

# genlm-control is imported on first use: importing it takes seconds, and most programs never do.

METHODS = ("auto", "mask", "awrs")
SMALL_ALPHABET = 128  # "auto" checks every candidate token exactly when there are at most this many


class ConstraintSpec:
    """A language of strings a span of generated text must belong to (base class).

    ``method`` picks how a span draws its tokens: ``"mask"`` computes the exact set of viable
    tokens (zero-variance weights; cached per state for `Regex`, otherwise one check per token
    whose bytes the language can contain), ``"awrs"`` runs adaptive weighted rejection sampling
    (checks a few tokens; noisy but unbiased weights). ``"auto"`` (default) takes ``"mask"`` for
    `Regex` and for languages over so few bytes that at most 128 tokens qualify (digits,
    arithmetic), ``"awrs"`` otherwise.
    """

    fast_masks = False  # True where `allowed` is cheap (per-state cache)

    def __init__(self, source: str, method: str):
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        self.source = source
        self.method = method
        self.byte_potential = self._compile_cached()

    def _compile_cached(self) -> Any:
        return _compile(type(self), self.source)

    @classmethod
    def _compile(cls, source: str) -> Any:
        raise NotImplementedError

    def bind(self, vocab: Vocabulary) -> TokenConstraint:
        """This constraint on ``vocab``'s token ids (built once per vocabulary and spec)."""
        per_vocab = _BOUND.setdefault(vocab, {})
        key = (type(self), self.source)
        if key not in per_vocab:
            per_vocab[key] = TokenConstraint(self, vocab)
        return per_vocab[key]

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and (other.source, other.method) == (self.source, self.method)

    def __hash__(self) -> int:
        return hash((type(self), self.source, self.method))

    def __deepcopy__(self, memo):
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.source!r})"


class Regex(ConstraintSpec):
    """Text that fully matches ``pattern`` (interegular syntax: Python ``re`` without
    backreferences or lookaround). ``.`` and negated classes range over printable ASCII."""

    fast_masks = True

    def __init__(self, pattern: str, *, method: str = "auto"):
        if not isinstance(pattern, str):
            raise TypeError(f"Regex needs a pattern string, got {type(pattern).__name__}")
        super().__init__(pattern, method)

    @classmethod
    def _compile(cls, source: str) -> Any:
        try:
            return walkable_fsa_class().from_regex(source)
        except Exception as e:
            raise ValueError(
                f"invalid regex {source!r}: {type(e).__name__}: {e or 'syntax error'}. "
                "Use Python re syntax without backreferences, lookarounds or inline flags."
            ) from e


class Grammar(ConstraintSpec):
    """Text in the language of a Lark context-free grammar (start symbol ``start``), e.g.
    ``'start: "(" start ")" | "x"'``."""

    def __init__(self, lark_text: str, *, method: str = "auto"):
        if not isinstance(lark_text, str):
            raise TypeError(f"Grammar needs Lark grammar text, got {type(lark_text).__name__}")
        super().__init__(lark_text, method)

    @classmethod
    def _compile(cls, source: str) -> Any:
        from genlm.control.potential.built_in.wcfg import BoolCFG

        try:
            return BoolCFG.from_lark(source)
        except Exception as e:
            raise ValueError(
                f"invalid Lark grammar: {type(e).__name__}: {e}. Write rules like "
                "'start: item+' and 'item: \"a\" | \"b\"' (see lark-parser.readthedocs.io)."
            ) from e


class JsonSchema(ConstraintSpec):
    """A JSON document valid under ``schema`` (JSON Schema draft 7; genlm's streaming checker).
    Trailing whitespace is always allowed, so JSON spans end only at EOS."""

    def __init__(self, schema: dict, *, method: str = "auto"):
        if not isinstance(schema, dict):
            raise TypeError(f"JsonSchema needs a schema dict, got {type(schema).__name__}")
        try:
            source = json.dumps(schema, sort_keys=True)
        except (TypeError, ValueError) as e:
            raise ValueError(f"the JSON schema must be JSON-serialisable: {e}") from e
        super().__init__(source, method)
        self.schema = schema

    @classmethod
    def _compile(cls, source: str) -> Any:
        from genlm.control.potential.built_in.json import JsonSchema as GenlmJsonSchema

        try:
            return GenlmJsonSchema(json.loads(source))
        except Exception as e:
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise ValueError(f"invalid JSON schema: {first}. Check it against JSON Schema draft 7.") from e

    def __repr__(self) -> str:
        return f"JsonSchema({self.schema!r})"


@lru_cache(maxsize=128)
def _compile(cls: type[ConstraintSpec], source: str) -> Any:
    return cls._compile(source)


@lru_cache(maxsize=1)
def walkable_fsa_class() -> type:
    """genlm's `BoolFSA` plus ``_advance``, so ``Coerced.sparse_logw_next`` skips dead branches
    of the token trie instead of visiting all of it, and ``state_key``."""
    from genlm.control.potential.built_in.wfsa import BoolFSA

    class WalkableFSA(BoolFSA):
        def __init__(self, wfsa, cache_maxsize: int = 50_000):
            super().__init__(wfsa, cache_maxsize=cache_maxsize)

        def _advance(self, chart, sym):
            fsa = self.wfsa.epsremove
            nxt = self.wfsa.R.chart()
            for i in chart:
                for j, w in fsa.arcs(i, sym):
                    nxt[j] += chart[i] * w
            return nxt if self._bool_prefix_logw(nxt) == 0.0 else None

        def state_key(self, data: bytes) -> frozenset:
            """The live states after ``data``: the next-token set depends on nothing else."""
            backward = self.wfsa.epsremove.backward
            return frozenset(i for i in self._consume(tuple(data)) if backward[i].score)

    return WalkableFSA


_BOUND: weakref.WeakKeyDictionary[Vocabulary, dict] = weakref.WeakKeyDictionary()
_TRIES: weakref.WeakKeyDictionary[Vocabulary, dict] = weakref.WeakKeyDictionary()


def token_trie(vocab: Vocabulary, ids: list[int], f) -> dict:
    """genlm's byte trie over the tokens ``ids`` (built once per vocabulary, shared by all specs)."""
    from genlm.control.potential.coerce import Coerced

    if vocab not in _TRIES:
        _TRIES[vocab] = Coerced.build_trie(ids, f)
    return _TRIES[vocab]


class TokenConstraint:
    """A spec lifted onto one vocabulary (shared by every particle; see the module docstring)."""

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
        self._loop_bound = isinstance(spec, JsonSchema)  # genlm's JSON checker keeps asyncio tasks
        self._masks: OrderedDict[frozenset, np.ndarray] = OrderedDict()
        self._max_cached_states = max_cached_states

    def __deepcopy__(self, memo):
        return self

    def route(self, method: str) -> str:
        """The sampling route for ``method``: "mask" or "awrs" (see `ConstraintSpec`)."""
        if method != "auto":
            return method
        small = int(self.candidates.sum()) - len(self.eos_ids) <= SMALL_ALPHABET
        return "mask" if self.spec.fast_masks or small else "awrs"

    def data(self, ids) -> bytes:
        return b"".join(self.token_bytes[i] for i in ids)

    def lifted(self) -> Any:
        """genlm's `Coerced` potential over token ids (one per event loop for the JSON checker)."""
        from genlm.control.potential.coerce import Coerced

        if self._lifted is not None and not self._loop_bound:
            return self._lifted
        loop = asyncio.get_running_loop()
        if self._lifted is None or self._lifted_loop() is not loop:
            # a checker built in an earlier event loop cannot be awaited from this one
            fresh = self.spec._compile(self.spec.source) if self._loop_bound else self.spec.byte_potential
            self._lifted = Coerced(
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
        if isinstance(self.spec.byte_potential, walkable_fsa_class()):
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
