"""The on-disk program cache: every planning attempt, one JSON file each.

Layout: ``<root>/<key>/<time_ns>-<pid>-<random>.json`` where ``key`` hashes the task and the
planner's name, so one directory holds every attempt at one task by one planner. A record holds
the task, planner, attempt number, prompt, completion, plan (program source, class, params),
error, result summary and whether the run passed.

Writes are atomic: a record is written to a hidden temporary file in the same directory, synced,
and renamed into place with ``os.replace``, so a reader sees a whole record or none, and a writer
killed mid-write leaves only a hidden temporary file that readers skip. Every record gets a fresh
unique name, so concurrent writers (threads or processes) never overwrite each other.

Reads trust nothing: a record is used only if it is a regular file (no link, FIFO or device) of
at most `MAX_RECORD_BYTES` whose JSON matches the record schema (`checked_record`); any other
file is skipped with a warning. What a record's plan may do is decided again when it runs
(planner-written programs are re-validated and sandboxed; `selfsteer.planners.solve` reuses a
library plan only if the library offers that very plan for the task).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import stat
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from selfsteer.smc.lm.loading import cache_dir

from .plan import ORIGINS, Plan
from .report import ReportError, check_json, checked_summary, clip

MAX_RECORD_BYTES = 16 << 20
MAX_RECORD_DEPTH = 24


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
                records.append(AttemptRecord.from_dict(checked_record(read_record(path))))
            except (OSError, ValueError, TypeError, RecursionError) as e:
                warnings.warn(f"skipping the program cache record {path}: {clip(str(e), 300)}", stacklevel=2)
        return [r for r in records if r.task.strip() == task.strip() and r.planner == planner]

    def latest_working(self, task: str, planner: str) -> AttemptRecord | None:
        """The newest attempt whose program ran and passed, if any."""
        for rec in reversed(self.attempts(task, planner)):
            if rec.passed and rec.plan:
                return rec
        return None


def read_record(path: Path) -> Any:
    """The JSON of the record at ``path``; a link, FIFO, device or file over `MAX_RECORD_BYTES`
    is a ValueError (opened without following links and without blocking)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError("not a regular file")
        if info.st_size > MAX_RECORD_BYTES:
            raise ValueError(f"larger than {MAX_RECORD_BYTES} bytes")
        data = f.read(MAX_RECORD_BYTES + 1)
    if len(data) > MAX_RECORD_BYTES:
        raise ValueError(f"larger than {MAX_RECORD_BYTES} bytes")
    return json.loads(data)


def _typed(data: dict, name: str, types: tuple[type, ...], *, optional: bool = False) -> Any:
    value = data.get(name)
    if (value is None and optional) or (isinstance(value, types) and not (isinstance(value, bool) and bool not in types)):
        return value
    raise ValueError(f"`{name}` must be {' or '.join(t.__name__ for t in types)}{' or null' if optional else ''}")


def checked_record(data: Any) -> dict[str, Any]:
    """The fields of an attempt record, checked against its schema (ValueError otherwise)."""
    try:
        check_json(data, "the record", max_depth=MAX_RECORD_DEPTH, max_items=200_000, max_text=MAX_RECORD_BYTES)
    except ReportError as e:
        raise ValueError(str(e)) from None
    if not isinstance(data, dict):
        raise ValueError("a record must be a JSON object")
    out = {"task": _typed(data, "task", (str,)), "planner": _typed(data, "planner", (str,)),
           "attempt": _typed(data, "attempt", (int,)), "error_kind": _typed(data, "error_kind", (str,), optional=True),
           "passed": _typed(data, "passed", (bool,)), "created": _typed(data, "created", (int, float))}
    error = _typed(data, "error", (str,), optional=True)
    out["error"] = clip(error) if error is not None else None
    plan = _typed(data, "plan", (dict,), optional=True)
    if plan is not None:
        checked = {"source": _typed(plan, "source", (str,)), "class_name": _typed(plan, "class_name", (str,)),
                   "params": _typed(plan, "params", (dict,)), "origin": _typed(plan, "origin", (str,)),
                   "program_name": _typed(plan, "program_name", (str,), optional=True),
                   "prompt": _typed(plan, "prompt", (list,), optional=True),
                   "completion": _typed(plan, "completion", (str,), optional=True)}
        if checked["origin"] not in ORIGINS:
            raise ValueError(f"unknown plan origin {clip(checked['origin'], 40)!r}")
        plan = checked
    out["plan"] = plan
    summary = _typed(data, "summary", (dict,), optional=True)
    if summary is not None:
        try:
            summary = {**summary, **checked_summary(summary)}
        except ReportError as e:
            raise ValueError(str(e)) from None
        summary["posterior"] = [list(entry) for entry in summary["posterior"]]
    out["summary"] = summary
    return out
