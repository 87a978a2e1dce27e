"""Key tracking for JSON spans: a comma that opens a key no schema-allowed key can fill.

genlm's checker writes objects with only the declared keys when ``additionalProperties`` is false
(or absent while ``properties`` is set), and rejects a duplicate key only once it is closed. So
after ``{"age": 3,`` with ``age`` the only key, every continuation dies a few tokens later (a
duplicate ``"age"``). `dead_comma` spots that comma as it is written, so a span never takes it.
"""

from __future__ import annotations

from typing import Any


def allowed_keys(schema: Any) -> frozenset[str] | None:
    """The keys an object under ``schema`` may hold, or None when any key may appear (or unknown)."""
    if not isinstance(schema, dict) or not isinstance(schema.get("properties"), dict):
        return None
    properties = schema["properties"]
    additional = schema.get("additionalProperties", not properties)
    return None if additional is not False else frozenset(properties)


def dead_comma(data: bytes, schema: Any) -> bool:
    """True if ``data`` (a JSON prefix) holds a comma inside an object whose allowed keys were all
    used when the comma came (schemas with combinators are not tracked: never True for them)."""
    stack: list[dict[str, Any]] = []  # one frame per open object or array
    pending: Any = schema  # the schema of the next value
    text = data.decode("utf-8", errors="ignore")
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            frame = stack[-1] if stack else None
            if j < n and frame is not None and frame["kind"] == "object" and frame["expect_key"]:
                key = text[i + 1:j]
                frame["used"].add(key)
                frame["expect_key"] = False
                props = frame["schema"].get("properties", {}) if isinstance(frame["schema"], dict) else {}
                pending = props.get(key)
            i = j + 1
            continue
        if c in "{[":
            kind = "object" if c == "{" else "array"
            stack.append({"kind": kind, "schema": pending, "used": set(), "expect_key": kind == "object"})
            pending = pending.get("items") if kind == "array" and isinstance(pending, dict) else None
        elif c in "}]":
            if stack:
                stack.pop()
        elif c == "," and stack:
            frame = stack[-1]
            if frame["kind"] == "object":
                keys = allowed_keys(frame["schema"])
                if keys is not None and keys <= frame["used"]:
                    return True
                frame["expect_key"] = True
            else:
                items = frame["schema"].get("items") if isinstance(frame["schema"], dict) else None
                pending = items
        i += 1
    return False
