"""The on-disk log store of log-augmented generation (LAG, arXiv 2505.14398).

A log is one past run: the task, the prompt the model saw, its response (reasoning and answer),
the outcome ("correct", "wrong", "unverified", ...), an embedding for retrieval and, optionally,
the KV cache of the log's tokens (`LogKV`) so a later run can reuse it instead of re-encoding.

Layout: one directory, two files per entry, ``<id>.json`` (everything but the tensors) and
``<id>.kv`` (the tensors, ``torch.save``). Guarantees:

- survives restarts: the directory is the whole state;
- atomic writes: each file is written under a temporary name and renamed into place, the tensors
  first, so a reader never sees a half-written entry;
- concurrent writers: ``add`` holds an exclusive ``flock`` on ``<root>/.lock`` while it writes and
  evicts; readers take no lock and skip entries that vanish under them;
- bounded size: after each ``add`` the least recently used entries (``touch`` marks use) are
  evicted until the store holds at most ``max_bytes``;
- corruption is never fatal: an unreadable entry is skipped with a `CorruptLogWarning`.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import time
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

VERSION = 1
ORPHAN_AGE_S = 600.0  # a temporary or tensor-only file older than this was left by a crashed writer


class CorruptLogWarning(UserWarning):
    """A log entry could not be read and was skipped."""


@dataclass
class LogKV:
    """KV cache of a log's tokens at positions ``0 .. len(token_ids) - 1``.

    ``keys``/``values``: per layer ``(1, H, L, D)`` tensors (keys with their rotary positions
    applied); ``logits``: ``(V,)`` next-token logits after the last token.
    """

    token_ids: list[int]
    keys: list[Any]
    values: list[Any]
    logits: Any

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in [*self.keys, *self.values, self.logits])


@dataclass(frozen=True)
class LogEntry:
    """One stored run (see the module docstring); ``has_kv`` says whether tensors were stored."""

    id: str
    task: str
    prompt: str
    response: str
    outcome: str
    embedding: np.ndarray = field(repr=False)
    embedder: str = ""
    model: str = ""
    has_kv: bool = False
    created: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self, kv_sha256: str | None) -> str:
        return json.dumps({
            "version": VERSION, "id": self.id, "task": self.task, "prompt": self.prompt,
            "response": self.response, "outcome": self.outcome,
            "embedding": [float(x) for x in self.embedding], "embedder": self.embedder,
            "model": self.model, "kv_sha256": kv_sha256, "created": self.created, "meta": self.meta,
        })

    @classmethod
    def from_json(cls, text: str) -> tuple[LogEntry, str | None]:
        d = json.loads(text)
        if not isinstance(d, dict) or d.get("version") != VERSION:
            raise ValueError("not a version-1 log entry")
        embedding = np.asarray(d["embedding"], dtype=np.float32)
        if embedding.ndim != 1 or not embedding.size or not np.all(np.isfinite(embedding)):
            raise ValueError("bad embedding")
        for key in ("id", "task", "prompt", "response", "outcome"):
            if not isinstance(d[key], str):
                raise ValueError(f"field {key!r} is not text")
        sha = d.get("kv_sha256")
        entry = cls(d["id"], d["task"], d["prompt"], d["response"], d["outcome"], embedding,
                    str(d.get("embedder", "")), str(d.get("model", "")), sha is not None,
                    float(d.get("created", 0.0)), dict(d.get("meta") or {}))
        return entry, sha


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}-{uuid.uuid4().hex[:8]}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class LogStore:
    """A directory of logs (see the module docstring). ``max_bytes`` bounds its size on disk."""

    def __init__(self, root: str | Path, *, max_bytes: int = 1 << 30):
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        self.root = Path(root).expanduser()
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_bytes = int(max_bytes)
        self._cache: dict[str, tuple[LogEntry, str | None]] = {}
        self._warned: set[tuple[str, int]] = set()

    def __repr__(self) -> str:
        return f"LogStore({str(self.root)!r}, {len(self)} entries)"

    def __len__(self) -> int:
        return len(self.entries())

    # ----- writing ---------------------------------------------------------------------------
    @contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.root / ".lock", "a+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def add(self, task: str, prompt: str, response: str, outcome: str, embedding: np.ndarray, *,
            kv: LogKV | None = None, embedder: str = "", model: str = "",
            meta: dict[str, Any] | None = None) -> LogEntry:
        """Store one log (tensors first, then its JSON), then evict down to ``max_bytes``."""
        import torch

        entry = LogEntry(uuid.uuid4().hex, task, prompt, response, outcome,
                         np.asarray(embedding, dtype=np.float32).ravel(), embedder, model,
                         kv is not None, time.time(), dict(meta or {}))
        sha = None
        with self._locked():
            if kv is not None:
                buf = io.BytesIO()
                torch.save({"token_ids": torch.tensor(kv.token_ids, dtype=torch.long),
                            "keys": [k.detach().cpu().contiguous() for k in kv.keys],
                            "values": [v.detach().cpu().contiguous() for v in kv.values],
                            "logits": kv.logits.detach().cpu().contiguous()}, buf)
                data = buf.getvalue()
                if len(data) > self.max_bytes:
                    raise ValueError(f"this log's KV takes {len(data)} bytes, more than the store's bound "
                                     f"max_bytes={self.max_bytes}; raise max_bytes or log a shorter response")
                sha = hashlib.sha256(data).hexdigest()
                _write_atomic(self.root / f"{entry.id}.kv", data)
            _write_atomic(self.root / f"{entry.id}.json", entry.to_json(sha).encode())
            self._evict(keep=entry.id)
        return entry

    def _evict(self, keep: str) -> None:
        now = time.time()
        for path in self.root.iterdir():  # leftovers of crashed writers
            orphan = path.name.startswith(".") and ".tmp" in path.name
            orphan |= path.suffix == ".kv" and not path.with_suffix(".json").exists()
            if orphan and now - _mtime(path) > ORPHAN_AGE_S:
                path.unlink(missing_ok=True)
        sized = []
        for meta in self.root.glob("*.json"):
            kv = meta.with_suffix(".kv")
            sized.append((_mtime(meta), meta.stem, _size(meta) + _size(kv)))
        total = sum(s for _, _, s in sized)
        for _, entry_id, size in sorted(sized):
            if total <= self.max_bytes:
                break
            if entry_id == keep:
                continue
            (self.root / f"{entry_id}.json").unlink(missing_ok=True)
            (self.root / f"{entry_id}.kv").unlink(missing_ok=True)
            total -= size

    def touch(self, entry: LogEntry) -> None:
        """Mark ``entry`` as just used (eviction removes the least recently used first)."""
        try:
            os.utime(self.root / f"{entry.id}.json")
        except FileNotFoundError:
            pass

    # ----- reading ---------------------------------------------------------------------------
    def _warn(self, path: Path, problem: str) -> None:
        key = (path.name, int(_mtime(path) * 1e6))
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(f"skipping corrupted log entry {path}: {problem}", CorruptLogWarning, stacklevel=3)

    def entries(self) -> list[LogEntry]:
        """Every readable entry, oldest first; corrupted ones are skipped with a warning."""
        names = {p.name for p in self.root.glob("*.json")}
        for gone in set(self._cache) - names:
            del self._cache[gone]
        for name in sorted(names - set(self._cache)):
            path = self.root / name
            try:
                self._cache[name] = LogEntry.from_json(path.read_text())
            except FileNotFoundError:
                continue  # evicted by another process meanwhile
            except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
                self._warn(path, f"{type(e).__name__}: {e}")
        return sorted((e for e, _ in self._cache.values()), key=lambda e: (e.created, e.id))

    def load_kv(self, entry: LogEntry, *, device: str = "cpu") -> LogKV | None:
        """The entry's tensors, or None (with a warning when they are missing or corrupted)."""
        import torch

        if not entry.has_kv:
            return None
        path = self.root / f"{entry.id}.kv"
        sha = self._cache.get(f"{entry.id}.json", (None, None))[1]
        try:
            data = path.read_bytes()
            if sha is not None and hashlib.sha256(data).hexdigest() != sha:
                raise ValueError("checksum mismatch")
            d = torch.load(io.BytesIO(data), map_location=device, weights_only=True)
            kv = LogKV([int(t) for t in d["token_ids"].tolist()], list(d["keys"]), list(d["values"]), d["logits"])
            n = len(kv.token_ids)
            if len(kv.keys) != len(kv.values) or any(k.shape[2] != n for k in [*kv.keys, *kv.values]):
                raise ValueError("tensor shapes do not match the token ids")
            return kv
        except FileNotFoundError:
            self._warn(path.with_suffix(".json"), "its KV file is missing")
        except Exception as e:  # torch raises many kinds of errors on damaged files
            self._warn(path, f"{type(e).__name__}: {e}")
        return None


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
