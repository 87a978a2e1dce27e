"""The sandbox's result channel: what the child may send, checked before the caller uses it.

The child is untrusted, so each line it sends is parsed under limits and checked against a strict
schema: `parse_line` (size, JSON depth, exactly one of ``ready``/``summary``/``error``),
`checked_error` and `checked_summary`. Anything else is a `ReportError`. Every text that reaches
the caller, the planner prompt or the program cache goes through `clip` first.
"""

from __future__ import annotations

import json
import math
import re
from itertools import accumulate
from typing import Any

from selfsteer.smc import Status

MAX_LINE_BYTES = 1 << 20
MAX_DEPTH = 16
MAX_ITEMS = 10_000
MAX_MESSAGE_CHARS = 2000
MAX_TEXT_CHARS = 20_000
REPORT_KEYS = ("loaded", "ready", "summary", "error")
ERROR_KINDS = ("program", "memory", "recursion", "violation", "load", "timeout")


JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
NOT_A_BRACKET = re.compile(r"[^\[\]{}]")


class ReportError(ValueError):
    """A report from the sandbox broke the schema; the message says how."""


def clip(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``text`` cut to ``limit`` characters, with a note of how much was cut."""
    text = str(text)
    if len(text) <= limit:
        return text
    return text[:limit] + f"... [{len(text) - limit} more characters cut]"


def check_json(value: Any, what: str, *, max_depth: int = MAX_DEPTH, max_items: int = MAX_ITEMS,
               max_text: int = MAX_TEXT_CHARS) -> Any:
    """``value`` if it is plain JSON data (no NaN or infinity) within depth and item limits."""
    stack, items = [(value, 0)], 0
    while stack:
        item, depth = stack.pop()
        items += 1
        if depth > max_depth or items > max_items:
            raise ReportError(f"{what} is nested deeper than {max_depth} levels or holds more than {max_items} items")
        if isinstance(item, dict):
            if not all(isinstance(k, str) for k in item):
                raise ReportError(f"{what} has a key that is not a string")
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
        elif isinstance(item, float) and not math.isfinite(item):
            raise ReportError(f"{what} holds a non-finite number")
        elif isinstance(item, str) and len(item) > max_text:
            raise ReportError(f"{what} holds a string longer than {max_text} characters")
        elif not (item is None or isinstance(item, (bool, int, float, str))):
            raise ReportError(f"{what} holds a {type(item).__name__}")
    return value


def json_depth(text: str) -> int:
    """How deeply the arrays and objects of a JSON text nest (brackets inside strings ignored)."""
    brackets = NOT_A_BRACKET.sub("", JSON_STRING.sub("", text))
    return max(accumulate(1 if c in "[{" else -1 for c in brackets), default=0)


def parse_line(line: bytes) -> tuple[str, Any]:
    """One report line as ``(key, value)``; key is one of `REPORT_KEYS`. The depth
    is checked before parsing, so a deeply nested line never reaches the recursive JSON parser."""
    if len(line) > MAX_LINE_BYTES:
        raise ReportError(f"the report is larger than {MAX_LINE_BYTES} bytes")
    text = line.decode("utf-8", errors="replace")
    if json_depth(text) > MAX_DEPTH + 4:
        raise ReportError(f"the report is nested deeper than {MAX_DEPTH} levels")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise ReportError(f"the report is not readable JSON ({type(e).__name__})") from None
    if not isinstance(data, dict) or len(data) != 1 or next(iter(data)) not in REPORT_KEYS:
        raise ReportError(f"the report must be one object with exactly one of the keys {', '.join(REPORT_KEYS)}")
    key, value = next(iter(data.items()))
    return key, check_json(value, f"the {key} report", max_text=MAX_LINE_BYTES)


def _field(data: dict, name: str, types: tuple[type, ...], what: str) -> Any:
    value = data.get(name)
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        raise ReportError(f"{what}: `{name}` must be {' or '.join(t.__name__ for t in types)}")
    return value


def checked_error(value: Any) -> tuple[str, str]:
    """``(kind, clipped message)`` of an error report."""
    if not isinstance(value, dict) or set(value) != {"kind", "message"}:
        raise ReportError("an error report must be {kind, message}")
    kind, message = _field(value, "kind", (str,), "error"), _field(value, "message", (str,), "error")
    if kind not in ERROR_KINDS:
        raise ReportError(f"unknown error kind {clip(kind, 40)!r}")
    return kind, clip(message)


def checked_summary(value: Any) -> dict[str, Any]:
    """A run summary's fields, checked (types, ranges, finite probabilities), ready for `RunSummary`."""
    what = "the run summary"
    if not isinstance(value, dict):
        raise ReportError(f"{what} must be an object")
    status = _field(value, "status", (str,), what)
    if status not in {s.value for s in Status}:
        raise ReportError(f"{what}: unknown status {clip(status, 40)!r}")
    log_ml = value.get("log_ml")
    if log_ml not in ("-inf", "inf", "nan") and not isinstance(log_ml, (int, float)) or isinstance(log_ml, bool):
        raise ReportError(f"{what}: `log_ml` must be a number")
    out = {"status": status, "log_ml": float(log_ml)}
    for name in ("n_particles", "n_steps", "n_finished", "n_check_failed"):
        n = _field(value, name, (int,), what)
        if n < 0:
            raise ReportError(f"{what}: `{name}` is negative")
        out[name] = n
    posterior = _field(value, "posterior", (list,), what)
    out["posterior"] = []
    for entry in posterior:
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[1], (int, float))
                and not isinstance(entry[1], bool)):
            raise ReportError(f"{what}: each posterior entry must be [output, probability]")
        p = float(entry[1])
        if not 0.0 <= p <= 1.0 + 1e-6:
            raise ReportError(f"{what}: posterior probability {p!r} is not in [0, 1] (non-finite weights?)")
        out["posterior"].append((clip(entry[0], MAX_TEXT_CHARS) if isinstance(entry[0], str) else entry[0], p))
    out["time_s"] = float(_field(value, "time_s", (int, float), what))
    responses = value.get("responses", [])
    if not (isinstance(responses, list) and all(isinstance(r, str) for r in responses)):
        raise ReportError(f"{what}: `responses` must be a list of strings")
    out["responses"] = [clip(r, MAX_TEXT_CHARS) for r in responses]
    fsf = value.get("failed_step_fraction")
    if fsf is not None and (not isinstance(fsf, (int, float)) or isinstance(fsf, bool) or not 0.0 <= fsf <= 1.0):
        raise ReportError(f"{what}: `failed_step_fraction` must be a number in [0, 1] or null")
    out["failed_step_fraction"] = fsf
    vote = value.get("vote")
    if vote is not None and not isinstance(vote, dict):
        raise ReportError(f"{what}: `vote` must be an object or null")
    out["vote"] = vote
    deaths = value.get("deaths", {})
    if not (isinstance(deaths, dict) and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0
                                             for n in deaths.values())):
        raise ReportError(f"{what}: `deaths` must map causes to counts")
    out["deaths"] = {clip(cause, MAX_TEXT_CHARS): n for cause, n in list(deaths.items())[:MAX_ITEMS]}
    rejected = value.get("rejected", [])
    if not isinstance(rejected, list):
        raise ReportError(f"{what}: `rejected` must be a list of outputs")
    out["rejected"] = [clip(r, MAX_TEXT_CHARS) if isinstance(r, str) else r for r in rejected[:MAX_ITEMS]]
    return out
