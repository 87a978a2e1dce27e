"""Result files that stay readable in a diff: nested mappings are indented, but every record (a
mapping or list of scalars, such as one timed run) is written on a single line, so a run of a
thousand records is a thousand lines, not fifteen thousand."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SHORT = 80  # a nested mapping or list whose JSON is at most this long counts as a scalar


def dumps(value: Any, indent: int = 0) -> str:
    """``value`` as JSON (``default=str`` for anything else), one line per record."""
    if not isinstance(value, dict | list) or _is_record(value):
        return json.dumps(value, default=str)
    pad = "  " * (indent + 1)
    if isinstance(value, dict):
        items = [f"{pad}{json.dumps(str(k))}: {dumps(v, indent + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + "  " * indent + "}"
    return "[\n" + ",\n".join(pad + dumps(v, indent + 1) for v in value) + "\n" + "  " * indent + "]"


def _is_record(value: dict | list) -> bool:
    items = value.values() if isinstance(value, dict) else value
    return all(not isinstance(v, dict | list) or len(json.dumps(v, default=str)) <= SHORT for v in items)


def write(path: Path, value: Any) -> Path:
    """Write ``value`` to ``path`` with `dumps` (and a final newline)."""
    path.write_text(dumps(value) + "\n")
    return path
