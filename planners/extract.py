"""`extract_params(name, task)`: the parameters of library program ``name`` read from ``task``.

Each program's `ProgramSpec` carries its own extraction rule (``SPEC.extract``) next to it; the
shared helpers for numbers, ordinals, bounds and word lists live in `selfsteer.programs.phrasing`
(re-exported here for callers of this module).
"""

from __future__ import annotations

from typing import Any

from selfsteer.programs.phrasing import (  # noqa: F401
    ExtractionError,
    bounds_of,
    count_of,
    exact_count_of,
    number,
    ordinal,
)
from selfsteer.programs.registry import get_program


def extract_params(name: str, task: str) -> dict[str, Any]:
    """The parameters of library program ``name`` read from ``task`` (`ExtractionError` if not found)."""
    try:
        spec = get_program(name).SPEC
    except ValueError as e:
        raise ExtractionError(str(e)) from None
    if spec.extract is None:
        raise ExtractionError(f"no extraction rules for program {name!r}")
    return spec.extract(task)
