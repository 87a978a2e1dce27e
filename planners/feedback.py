"""Feedback for the planner's next attempt: what failed, on which lines, and what the run wrote.

`attempt_feedback(kind, error, source)` words one failed attempt for the planner (DisCIPL's repair
loop): the stage that failed (``kind``), the error message, and every program line the message
names ("line 12") quoted from the program's source, unless the message quotes it already. When
the run finished but nothing passed, the error (from `RunSummary.describe_failure`) already
carries a sample of the outputs ``check`` rejected.
"""

from __future__ import annotations

import re

LINE_REF = re.compile(r"\bline (\d+)\b(?!: `)")
STAGES = {
    "validation": "it breaks the rules of the system message",
    "no_output": "it ran, but no particle produced an accepted output",
    "timeout": "it ran out of time",
    "memory": "it ran out of memory",
    "program": "it raised an error while running",
}
MAX_QUOTED_LINES = 8


def quote_lines(error: str, source: str | None) -> str:
    """The program lines ``error`` names but does not quote, as ``  12 | code`` (empty if none)."""
    if not source:
        return ""
    lines = source.splitlines()
    numbers = sorted({int(n) for n in LINE_REF.findall(error) if 1 <= int(n) <= len(lines)})[:MAX_QUOTED_LINES]
    return "\n".join(f"  {n} | {lines[n - 1].strip()}" for n in numbers)


def attempt_feedback(kind: str | None, error: str, source: str | None) -> str:
    """The feedback for one failed attempt (see the module docstring)."""
    stage = STAGES.get(kind or "", f"it failed ({kind})" if kind else "it failed")
    quoted = quote_lines(error, source)
    return f"The program failed: {stage}.\n{error}" + (f"\nThe lines named above:\n{quoted}" if quoted else "")
