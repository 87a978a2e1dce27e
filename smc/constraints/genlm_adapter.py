"""Every call into genlm-control's internals, in one place.

genlm-control is imported on first use (importing it takes seconds, and most programs never
constrain anything). Everything the constraints layer needs from it is a function here, so an
upgrade of genlm-control touches this module alone.
"""

from __future__ import annotations

import importlib
from functools import lru_cache
from typing import Any


def _import(module: str) -> Any:
    return importlib.import_module(module)


def bool_cfg(lark_text: str) -> Any:
    """genlm's boolean byte-level potential for a Lark grammar (raises on a bad grammar)."""
    return _import("genlm.control.potential.built_in.wcfg").BoolCFG.from_lark(lark_text)


def json_schema_checker(schema: dict) -> Any:
    """genlm's streaming JSON-schema checker (a byte-level potential; raises on a bad schema)."""
    return _import("genlm.control.potential.built_in.json").JsonSchema(schema)


def regex_fsa(pattern: str) -> Any:
    """A `walkable_fsa_class` potential for ``pattern`` (raises on a bad pattern)."""
    return walkable_fsa_class().from_regex(pattern)


def coerced() -> type:
    """genlm's `Coerced`: a byte potential lifted onto token ids (and its ``build_trie``)."""
    return _import("genlm.control.potential.coerce").Coerced


def geometric_awrs() -> Any:
    """genlm's adaptive weighted rejection sampler with the geometric estimator (a coroutine)."""
    return _import("genlm.control.sampler.token").geometric_awrs


@lru_cache(maxsize=1)
def walkable_fsa_class() -> type:
    """genlm's `BoolFSA` plus ``_advance``, so ``Coerced.sparse_logw_next`` skips dead branches
    of the token trie instead of visiting all of it, and ``state_key``."""
    BoolFSA = _import("genlm.control.potential.built_in.wfsa").BoolFSA

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
