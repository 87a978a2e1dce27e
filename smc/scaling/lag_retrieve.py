"""Log-augmented generation: retrieve past runs by similarity, reuse their KV, record new runs.

`nearest_logs` ranks stored logs by the cosine similarity of their task embedding to the new
task's (nearest first). `LogMemory` is the loop a solver runs around each task:

1. ``examples = memory.recall(lm, task)``: the ``k`` nearest logs (optionally only those with a
   given outcome), as ``(prompt, response)`` pairs for a program's ``examples`` parameter; on the
   transformers backend their stored KV is installed in the LM's prompt cache (`lag_kv`), so the
   program's prompt starts from it instead of re-encoding the logs. The nearest log comes last,
   next to the new task.
2. run the program;
3. ``memory.record(lm, task, prompt, response, outcome)``: embed the task, encode the log's KV
   (transformers backend) and add it to the store.
"""

from __future__ import annotations

import warnings
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .embed import Embedder, load_embedder, unit_rows
from .lag_kv import encode_log, install_logs, log_messages, supports_kv_reuse
from .lag_store import LogEntry, LogStore

if TYPE_CHECKING:
    from ..lm.base import LanguageModel


def nearest_logs(
    entries: Sequence[LogEntry],
    query: np.ndarray,
    k: int,
    *,
    outcomes: Collection[str] | None = None,
) -> list[tuple[LogEntry, float]]:
    """The ``k`` entries most similar to ``query`` (cosine), nearest first; ties: newer first.

    Entries whose embedding has another dimension than ``query`` (another embedder) are left out,
    and so are those whose outcome is not in ``outcomes`` (None: any outcome).
    """
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    q = unit_rows(np.asarray(query, dtype=np.float64).reshape(1, -1))[0]
    pool = [e for e in entries if e.embedding.shape == q.shape and (outcomes is None or e.outcome in outcomes)]
    if not pool or k == 0:
        return []
    sims = unit_rows(np.stack([e.embedding for e in pool])) @ q
    order = sorted(range(len(pool)), key=lambda i: (-sims[i], -pool[i].created, pool[i].id))
    return [(pool[i], float(sims[i])) for i in order[:k]]


@dataclass(frozen=True)
class Recall:
    """What one ``recall`` retrieved: the logs (nearest first), their similarities and how many
    were reused as KV."""

    logs: tuple[LogEntry, ...]
    similarities: tuple[float, ...]
    n_kv_reused: int

    @property
    def examples(self) -> list[tuple[str, str]]:
        """``(prompt, response)`` pairs in prompt order (the nearest log last)."""
        return [(e.prompt, e.response) for e in reversed(self.logs)]


class LogMemory:
    """A `LogStore` with an embedder and a retrieval policy (see the module docstring).

    Args:
        store: a `LogStore` or its directory.
        embedder: texts -> unit embeddings; default: the bundled all-MiniLM-L6-v2.
        k: how many logs to put before each task.
        outcomes: only logs with one of these outcomes are retrieved (None: any).
        reuse_kv: store and reuse KV caches where the backend supports it (else text only).
    """

    def __init__(self, store: LogStore | str | Path, embedder: Embedder | None = None, *, k: int = 1,
                 outcomes: Collection[str] | None = ("correct",), reuse_kv: bool = True):
        self.store = store if isinstance(store, LogStore) else LogStore(store)
        self._embedder = embedder
        self.k, self.reuse_kv = k, reuse_kv
        self.outcomes = None if outcomes is None else set(outcomes)

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = load_embedder()
        return self._embedder

    @property
    def embedder_name(self) -> str:
        return str(getattr(self.embedder, "name", type(self.embedder).__name__))

    def embed(self, text: str) -> np.ndarray:
        return np.asarray(self.embedder([text]), dtype=np.float32)[0]

    def retrieve(self, task: str) -> list[tuple[LogEntry, float]]:
        """The ``k`` nearest stored logs for ``task`` (nearest first); marks them as used."""
        found = nearest_logs(self.store.entries(), self.embed(task), self.k, outcomes=self.outcomes)
        for entry, _ in found:
            self.store.touch(entry)
        return found

    def recall(self, lm: LanguageModel, task: str) -> Recall:
        """Retrieve logs for ``task`` and, on the transformers backend, install their KV in ``lm``."""
        found = self.retrieve(task)
        logs = tuple(e for e, _ in found)
        n_reused = 0
        if logs and self.reuse_kv and supports_kv_reuse(lm):
            ordered = list(reversed(logs))
            kvs = []
            for e in ordered:
                if e.has_kv and e.model != lm.name:
                    warnings.warn(f"log {e.id} holds the KV of {e.model!r}, not of {lm.name!r}; it is encoded as text",
                                  stacklevel=2)
                kvs.append(self.store.load_kv(e, device=str(lm.device)) if e.model == lm.name else None)
            n_reused = install_logs(lm, [(log_messages(e.prompt, e.response), kv) for e, kv in zip(ordered, kvs, strict=True)])
        return Recall(logs, tuple(s for _, s in found), n_reused)

    def record(self, lm: LanguageModel, task: str, prompt: str, response: str, outcome: str = "unverified",
               meta: dict[str, Any] | None = None) -> LogEntry:
        """Add one run to the store (with its KV when ``reuse_kv`` and the backend allow it)."""
        kv = encode_log(lm, log_messages(prompt, response)) if self.reuse_kv and supports_kv_reuse(lm) else None
        return self.store.add(task, prompt, response, outcome, self.embed(task), kv=kv,
                              embedder=self.embedder_name, model=lm.name, meta=meta)
