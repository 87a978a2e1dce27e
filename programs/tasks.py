"""Constraint specs for tasks, and a checker that shares no code with the programs.

A task file is JSON lines, one task per line::

    {"id": "sent_words_01", "family": "collie_sentences", "task": "Write a sentence with exactly 12 words.",
     "constraints": {"unit": "sentence", "n_words": 12},
     "checker": {"program": "sentence_word_count", "params": {"n_words": 12}}}

``constraints`` is what `check_constraints` verifies; ``checker`` names the library program
(and parameters) that solves the task, for planners' evaluations. Every constraint must hold:

- ``unit``: ``"sentence"`` (one line, one sentence, ending in . ! or ?), ``"paragraph"`` (one
  line ending in . ! or ?), ``"lines"`` or ``"text"`` (no shape required).
- ``starts_with``: the text starts with this; word counts then cover only what follows it.
- ``n_words``, ``min_words``, ``max_words``: number of words.
- ``words_at``: ``{"3": "soft"}``: the word at each 1-based position. ``last_word``: the last word.
- ``max_word_chars``: no word longer than this. ``include_words``: all appear.
  ``forbidden_words``: none appears. ``banned_letters``: none of these letters appears.
- ``n_chars``: the stripped text has exactly this many characters.
- ``n_sentences``, ``min_sentences``; ``sentence_min_words``, ``sentence_max_words``;
  ``sentence_starts_with``: every sentence's first word; ``sentence_last_words``: sentence i
  ends with word i (and there are as many sentences as words).
- ``n_lines``, ``words_per_line``; ``line_initials``: ``"RAIN"``: one line per letter, line i
  starting (first letter, ignoring case) with letter i (an acrostic).
- ``item_lines``: ``{"max_items", "max_total" or "total_below"}``: every line is
  ``- name: $D.CC``; between 1 and ``max_items`` lines; prices sum to at most ``max_total``
  (or strictly below ``total_below``).
- ``schedule``: ``{"n_activities", "start", "end"}``: every line is ``H:MM-H:MM: activity``;
  exactly ``n_activities`` lines, inside the day, each ending after it starts, in order,
  without overlaps.
- ``priced_items``: ``{"n_items", "max_total" or "total_below"}``: exactly ``n_items`` lines,
  each with one dollar price (``$3``, ``$2.50``) in any layout; prices sum to at most
  ``max_total`` (or strictly below ``total_below``).
- ``json_fields``: ``{"age": {"type": "integer", "min": 18, "max": 99}, ...}``: the text (a
  fenced code block is unwrapped) is one JSON object with exactly these keys; ``type`` is
  ``string``, ``integer`` or ``number``; ``min``/``max`` bound numbers, inclusive.

A word is a run of ASCII letters and digits, possibly joined by apostrophes or hyphens
("don't", "well-known"); comparisons ignore case.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

WORD = re.compile(r"[A-Za-z0-9]+(?:['’-][A-Za-z0-9]+)*")
SENTENCE_BREAK = re.compile(r"(?<=[.!?])[\"'”’)\]]*\s+")
TERMINAL = re.compile(r"[.!?][\"'”’)\]]*$")
ITEM = re.compile(r"^-\s*(?P<name>[^:\n]+?):\s*\$(?P<price>\d+(?:\.\d{1,2})?)$")
PRICE = re.compile(r"\$\s?(\d+(?:\.\d{1,2})?)\b")
FENCED = re.compile(r"^```[A-Za-z]*\s*\n(?P<body>.*)\n```$", re.S)
JSON_TYPES = {"string": (str,), "integer": (int,), "number": (int, float)}
ACTIVITY = re.compile(r"^(?P<h1>\d{1,2}):(?P<m1>\d{2})\s*-\s*(?P<h2>\d{1,2}):(?P<m2>\d{2}):\s*(?P<what>\S.*)$")
UNITS = ("sentence", "paragraph", "lines", "text")
KEYS = {
    "unit", "starts_with", "n_words", "min_words", "max_words", "words_at", "max_word_chars",
    "include_words", "forbidden_words", "banned_letters", "n_chars", "n_sentences", "min_sentences",
    "sentence_min_words", "sentence_max_words", "sentence_starts_with", "sentence_last_words",
    "n_lines", "words_per_line", "item_lines", "schedule", "last_word", "line_initials", "priced_items",
    "json_fields",
}


def word_list(text: str) -> list[str]:
    return [w.lower() for w in WORD.findall(text)]


def sentence_list(text: str) -> list[str]:
    return [s for s in SENTENCE_BREAK.split(text.strip()) if s.strip()]


def minutes(hours: str | int, mins: str | int = 0) -> int:
    return int(hours) * 60 + int(mins)


def parse_clock(value: str) -> int:
    h, _, m = value.partition(":")
    return minutes(h, m or 0)


def check_constraints(constraints: dict[str, Any], text: str) -> list[str]:
    """The constraints ``text`` violates (empty when it satisfies them all)."""
    unknown = set(constraints) - KEYS
    if unknown:
        raise ValueError(f"unknown constraint(s) {sorted(unknown)}; known: {sorted(KEYS)}")
    if not isinstance(text, str):
        return ["the output is not text"]
    text = text.strip()
    c = constraints
    fails: list[str] = []

    def need(ok: bool, what: str) -> None:
        if not ok:
            fails.append(what)

    unit = c.get("unit", "text")
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {UNITS}, got {unit!r}")
    need(bool(text), "the output is empty")
    if unit in ("sentence", "paragraph"):
        need("\n" not in text, f"a {unit} is one line")
        need(bool(TERMINAL.search(text)), f"a {unit} ends with . ! or ?")
    if unit == "sentence":
        need(len(sentence_list(text)) == 1, "exactly one sentence")

    body = text
    if "starts_with" in c:
        need(text.startswith(c["starts_with"]), f"starts with {c['starts_with']!r}")
        body = text[len(c["starts_with"]):]
    words = word_list(body)
    if "n_words" in c:
        need(len(words) == c["n_words"], f"{c['n_words']} words (has {len(words)})")
    if "min_words" in c:
        need(len(words) >= c["min_words"], f"at least {c['min_words']} words (has {len(words)})")
    if "max_words" in c:
        need(len(words) <= c["max_words"], f"at most {c['max_words']} words (has {len(words)})")
    for pos, word in c.get("words_at", {}).items():
        i = int(pos)
        need(i <= len(words) and words[i - 1] == word.lower(), f"word {i} is {word!r}")
    if "last_word" in c:
        need(bool(words) and words[-1] == c["last_word"].lower(), f"the last word is {c['last_word']!r}")
    if "max_word_chars" in c:
        need(all(len(w) <= c["max_word_chars"] for w in words), f"no word over {c['max_word_chars']} characters")
    for word in c.get("include_words", []):
        need(word.lower() in words, f"includes {word!r}")
    for word in c.get("forbidden_words", []):
        need(word.lower() not in words, f"does not use {word!r}")
    for letter in c.get("banned_letters", ""):
        need(letter.lower() not in text.lower(), f"no letter {letter!r}")
    if "n_chars" in c:
        need(len(text) == c["n_chars"], f"{c['n_chars']} characters (has {len(text)})")

    sents = sentence_list(text)
    sent_words = [word_list(s) for s in sents]
    if "n_sentences" in c:
        need(len(sents) == c["n_sentences"], f"{c['n_sentences']} sentences (has {len(sents)})")
    if "min_sentences" in c:
        need(len(sents) >= c["min_sentences"], f"at least {c['min_sentences']} sentences (has {len(sents)})")
    if "sentence_min_words" in c:
        need(all(len(w) >= c["sentence_min_words"] for w in sent_words), f"every sentence has at least {c['sentence_min_words']} words")
    if "sentence_max_words" in c:
        need(all(len(w) <= c["sentence_max_words"] for w in sent_words), f"every sentence has at most {c['sentence_max_words']} words")
    if "sentence_starts_with" in c:
        first = c["sentence_starts_with"].lower()
        need(all(w and w[0] == first for w in sent_words), f"every sentence starts with {first!r}")
    if "sentence_last_words" in c:
        lasts = [w.lower() for w in c["sentence_last_words"]]
        need(len(sents) == len(lasts) and all(w and w[-1] == x for w, x in zip(sent_words, lasts, strict=False)),
             f"the sentences end with {lasts}")

    rows = [r.strip() for r in text.splitlines() if r.strip()]
    if "n_lines" in c:
        need(len(rows) == c["n_lines"], f"{c['n_lines']} lines (has {len(rows)})")
    if "words_per_line" in c:
        need(all(len(word_list(r)) == c["words_per_line"] for r in rows), f"{c['words_per_line']} words on every line")
    if "line_initials" in c:
        letters = c["line_initials"].lower()
        initials = "".join(next((ch for ch in r.lower() if ch.isalpha()), "") for r in rows)
        need(initials == letters, f"one line per letter of {c['line_initials']!r}, each starting with it")
    if "item_lines" in c:
        fails += check_items(c["item_lines"], rows)
    if "priced_items" in c:
        fails += check_priced_items(c["priced_items"], rows)
    if "json_fields" in c:
        fails += check_json_fields(c["json_fields"], text)
    if "schedule" in c:
        fails += check_schedule(c["schedule"], rows)
    return fails


def check_items(spec: dict[str, Any], rows: list[str]) -> list[str]:
    matches = [ITEM.match(r) for r in rows]
    if not rows or not all(matches):
        return ["every line is '- name: $D.CC'"]
    fails = []
    if len(rows) > spec["max_items"]:
        fails.append(f"at most {spec['max_items']} items (has {len(rows)})")
    total = round(sum(float(m["price"]) for m in matches), 2)
    if "max_total" in spec and total > spec["max_total"]:
        fails.append(f"total at most ${spec['max_total']:.2f} (is ${total:.2f})")
    if "total_below" in spec and total >= spec["total_below"]:
        fails.append(f"total below ${spec['total_below']:.2f} (is ${total:.2f})")
    return fails


def check_priced_items(spec: dict[str, Any], rows: list[str]) -> list[str]:
    prices = [PRICE.findall(r) for r in rows]
    fails = []
    if len(rows) != spec["n_items"]:
        fails.append(f"{spec['n_items']} items, one a line (has {len(rows)} lines)")
    if not all(len(p) == 1 for p in prices):
        return [*fails, "every line has one dollar price"]
    total = round(sum(float(p[0]) for p in prices), 2)
    if "max_total" in spec and total > spec["max_total"]:
        fails.append(f"total at most ${spec['max_total']:.2f} (is ${total:.2f})")
    if "total_below" in spec and total >= spec["total_below"]:
        fails.append(f"total below ${spec['total_below']:.2f} (is ${total:.2f})")
    return fails


def check_json_fields(fields: dict[str, dict[str, Any]], text: str) -> list[str]:
    fenced = FENCED.match(text)
    try:
        record = json.loads(fenced["body"] if fenced else text)
    except ValueError:
        return ["the text is one JSON object"]
    if not isinstance(record, dict):
        return ["the text is one JSON object"]
    if set(record) != set(fields):
        return [f"the keys are exactly {sorted(fields)} (has {sorted(record)})"]
    fails = []
    for key, rule in fields.items():
        value = record[key]
        if isinstance(value, bool) or not isinstance(value, JSON_TYPES[rule["type"]]):
            fails.append(f"{key} is a JSON {rule['type']}")
        elif ("min" in rule and value < rule["min"]) or ("max" in rule and value > rule["max"]):
            fails.append(f"{key} is between {rule.get('min', '-inf')} and {rule.get('max', 'inf')}")
    return fails


def check_schedule(spec: dict[str, Any], rows: list[str]) -> list[str]:
    matches = [ACTIVITY.match(r) for r in rows]
    if not rows or not all(matches):
        return ["every line is 'H:MM-H:MM: activity'"]
    fails = []
    if len(rows) != spec["n_activities"]:
        fails.append(f"{spec['n_activities']} activities (has {len(rows)})")
    spans = [(minutes(m["h1"], m["m1"]), minutes(m["h2"], m["m2"])) for m in matches]
    if any(int(m["m1"]) > 59 or int(m["m2"]) > 59 for m in matches):
        fails.append("minutes are below 60")
    if any(a >= b for a, b in spans):
        fails.append("every activity ends after it starts")
    if spans[0][0] < parse_clock(spec["start"]) or spans[-1][1] > parse_clock(spec["end"]):
        fails.append(f"the day runs from {spec['start']} to {spec['end']}")
    if any(prev[1] > nxt[0] for prev, nxt in zip(spans, spans[1:], strict=False)):
        fails.append("activities are in order without overlaps")
    return fails


def passes(constraints: dict[str, Any], text: str) -> bool:
    """True if ``text`` satisfies every constraint."""
    return not check_constraints(constraints, text)


def load_tasks(path: str | Path) -> list[dict[str, Any]]:
    """The tasks of a JSON-lines file; each needs ``id``, ``task`` and ``constraints``."""
    tasks = []
    for i, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            missing = {"id", "task", "constraints"} - set(row)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{i}: not JSON ({e})") from None
        if missing:
            raise ValueError(f"{path}:{i}: a task needs the keys id, task and constraints; missing {sorted(missing)}")
        check_constraints(row["constraints"], "")  # rejects unknown constraint names early
        tasks.append(row)
    return tasks
