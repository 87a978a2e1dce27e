"""Constraint specs: `Regex`, `Grammar` (Lark CFG) and `JsonSchema`.

A spec names a language of byte strings and compiles it, at construction, to genlm-control's
boolean byte-level potential: `BoolFSA` for a regex, `BoolCFG` for a Lark grammar, genlm's
`JsonSchema` checker for a schema. A bad pattern, grammar or schema raises `ValueError` there.
``spec.bind(vocab)`` lifts the potential onto an LM's tokens (`TokenConstraint`, in
`selfsteer.smc.constraints.token_constraint`); spans use that (see `selfsteer.smc.constraints.span`).

Specs compare by value and compile once per process (a cache keyed by their source), so writing
``Regex(r"...")`` inside ``step()`` costs nothing after the first time. The first spec of a
process imports genlm-control (a few seconds).
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from ..lm.vocab import Vocabulary
from . import genlm_adapter
from .token_constraint import TokenConstraint, bound

METHODS = ("auto", "mask", "awrs")


class ConstraintSpec:
    """A language of strings a span of generated text must belong to (base class).

    ``method`` picks how a span draws its tokens: ``"mask"`` computes the exact set of viable
    tokens (zero-variance weights; cached per automaton state for `Regex`, otherwise one check
    per token whose bytes the language can contain), ``"awrs"`` runs adaptive weighted rejection
    sampling (checks a few tokens; noisy but unbiased weights). ``"auto"`` (default) decides
    per regex state: "mask" where at most 2048 tokens start with a byte the state allows (digits,
    punctuation, fixed words), "awrs" where the walk would be long (free text); for grammars and
    schemas "mask" when at most 128 tokens consist of bytes the language uses, else "awrs". The
    choice depends only on the state, never on what earlier runs cached, so seeds reproduce.
    """

    fast_masks = False  # a regex: viable-token sets are cached per automaton state
    loop_bound = False  # genlm's checker holds asyncio tasks: one per event loop

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
        return bound(self, vocab)

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
            return genlm_adapter.regex_fsa(source)
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
        try:
            return genlm_adapter.bool_cfg(source)
        except Exception as e:
            raise ValueError(
                f"invalid Lark grammar: {type(e).__name__}: {e}. Write rules like "
                "'start: item+' and 'item: \"a\" | \"b\"' (see lark-parser.readthedocs.io)."
            ) from e


class JsonSchema(ConstraintSpec):
    """A JSON document valid under ``schema`` (JSON Schema draft 7; genlm's streaming checker).
    Trailing whitespace is always allowed, so JSON spans end only at EOS. genlm's checker passes
    a few prefixes that no valid document extends (e.g. leading spaces before an object); a
    particle that takes one dies, which costs particles but not correctness."""

    loop_bound = True

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
        try:
            return genlm_adapter.json_schema_checker(json.loads(source))
        except Exception as e:
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise ValueError(f"invalid JSON schema: {first}. Check it against JSON Schema draft 7.") from e

    def __repr__(self) -> str:
        return f"JsonSchema({self.schema!r})"


@lru_cache(maxsize=128)
def _compile(cls: type[ConstraintSpec], source: str) -> Any:
    return cls._compile(source)
