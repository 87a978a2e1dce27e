"""The on-disk program cache: every planning attempt, one JSON file each.

Layout: ``<root>/<key>/<time_ns>-<pid>-<random>.json`` where ``key`` hashes the task and the
planner's name, so one directory holds every attempt at one task by one planner. A record holds
the task, planner, attempt number, prompt, completion, plan (program source, class, params),
error, result summary and whether the run passed.

Writes are atomic: a record is written to a hidden temporary file in the same directory, synced,
and renamed into place with ``os.replace``, so a reader sees a whole record or none, and a writer
killed mid-write leaves only a hidden temporary file that readers skip. Every record gets a fresh
unique name, so concurrent writers (threads or processes) never overwrite each other.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from selfsteer.smc.lm.loading import cache_dir

from .plan import Plan


def default_cache_root() -> Path:
    return cache_dir() / "programs"


def task_key(task: str, planner: str) -> str:
    """The directory name for (task, planner): a hash of both."""
    return hashlib.sha256(f"{planner}\n{task.strip()}".encode()).hexdigest()[:24]


@dataclass
class AttemptRecord:
    """One planning attempt (see the module docstring)."""

    task: str
    planner: str
    attempt: int
    plan: dict[str, Any] | None = None
    error: str | None = None
    error_kind: str | None = None
    summary: dict[str, Any] | None = None
    passed: bool = False
    created: float = field(default_factory=time.time)

    @property
    def prompt(self) -> list[dict] | None:
        return (self.plan or {}).get("prompt")

    @property
    def completion(self) -> str | None:
        return (self.plan or {}).get("completion")

    def to_plan(self) -> Plan | None:
        return Plan.from_dict(self.plan) if self.plan else None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AttemptRecord:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


class ProgramCache:
    """Attempt records under ``root`` (default ``$SELFSTEER_CACHE/programs``)."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else default_cache_root()

    def directory(self, task: str, planner: str) -> Path:
        return self.root / task_key(task, planner)

    def record(self, rec: AttemptRecord) -> Path:
        """Write ``rec`` atomically as a new file; returns its path."""
        folder = self.directory(rec.task, rec.planner)
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(4)}.json"
        tmp = folder / f".tmp-{name}"
        data = json.dumps(asdict(rec), indent=1, default=repr)
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, folder / name)
        return folder / name

    def attempts(self, task: str, planner: str) -> list[AttemptRecord]:
        """Every readable record for (task, planner), oldest first; temporary files are skipped."""
        folder = self.directory(task, planner)
        if not folder.is_dir():
            return []
        records = []
        for path in sorted(folder.glob("[0-9]*.json")):
            try:
                records.append(AttemptRecord.from_dict(json.loads(path.read_text(encoding="utf-8"))))
            except (OSError, ValueError, TypeError):
                continue  # unreadable: skipped, never fatal
        return [r for r in records if r.task.strip() == task.strip() and r.planner == planner]

    def latest_working(self, task: str, planner: str) -> AttemptRecord | None:
        """The newest attempt whose program ran and passed, if any."""
        for rec in reversed(self.attempts(task, planner)):
            if rec.passed and rec.plan:
                return rec
        return None
