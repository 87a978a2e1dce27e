"""The run-trace viewer: one self-contained HTML page that shows the particles evolve.

``render_html(trace)`` takes a `Trace`, its JSON dict or a path to a saved trace and returns the
page as a string (inline CSS and JS, no network, works from ``file://``). The page has a step
slider (play/pause, arrow keys, ``#step=N`` in the URL picks the first step shown), every
particle of the current step with its new text highlighted, weight bar and state, an ancestry
panel (one column per step, a line from each particle to its parent), an ESS chart, and the
final status, log-ML and posterior.

The page is drawn from a view model that this module computes (`view_model`): normalised
weights, states, each particle's parent in the previous step (recorded by the engine, see
`parent_indices`) and how much of its text it inherited. Particle text is LM output: the page inserts it only as DOM text, and the
embedded JSON escapes ``<``, ``>`` and ``&`` so no text can close the script element.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from .trace import Trace
from .weights import normalise

_DATA_SLOT = "/*SELFSTEER_TRACE_JSON*/"
_STEP_KEYS = ("step", "particles", "ess")
_PARTICLE_KEYS = ("text", "log_weight", "finished", "alive")


def trace_data(trace: Trace | dict[str, Any] | str | Path) -> dict[str, Any]:
    """The trace's JSON dict, checked; a path is read with `Trace.load`. ValueError if malformed."""
    if isinstance(trace, Trace):
        data = trace.data
    elif isinstance(trace, (str, Path)):
        data = Trace.load(trace).data
    elif isinstance(trace, dict) and trace.get("version") == 1:
        data = trace
    else:
        raise ValueError(
            "render_html needs a Trace, a trace dict (version 1) or a trace file path; "
            "record one with smc(..., record=True) and pass result.trace"
        )
    try:
        check_steps(data.get("steps"))
    except ValueError as e:
        source = f"{trace} is a " if isinstance(trace, (str, Path)) else ""
        raise ValueError(f"{source}malformed trace: {e}; record it again with `--trace` or record=True") from None
    return data


def check_steps(steps: Any) -> None:
    """Raise ValueError naming the first step or particle that lacks a field of the schema."""
    if not isinstance(steps, list):
        raise ValueError("the trace has no list of 'steps'")
    for s, step in enumerate(steps):
        if not isinstance(step, dict) or not all(k in step for k in _STEP_KEYS):
            raise ValueError(f"step {s + 1} needs the fields {', '.join(_STEP_KEYS)}")
        if not isinstance(step["particles"], list) or not all(
            isinstance(p, dict) and all(k in p for k in _PARTICLE_KEYS) for p in step["particles"]
        ):
            raise ValueError(f"step {s + 1}: every particle needs the fields {', '.join(_PARTICLE_KEYS)}")
        ancestors = step.get("ancestors")
        n = len(step["particles"])
        if step.get("resampled") and not (
            isinstance(ancestors, list) and all(isinstance(a, int) and 0 <= a < n for a in ancestors)
        ):
            raise ValueError(f"step {s + 1} resampled but its ancestors are not indices below {n}")
        parents = step.get("parents")
        if parents is not None and s > 0:
            m = len(steps[s - 1]["particles"])
            if not (isinstance(parents, list) and len(parents) == n
                    and all(isinstance(a, int) and 0 <= a < m for a in parents)):
                raise ValueError(f"step {s + 1}: parents must be {n} indices below {m}")


def parent_indices(steps: Sequence[dict[str, Any]], n_beam: int = 1) -> list[list[int | None]]:
    """For every step, each particle's index in the previous step's list (None where unknown).

    The engine records them (a step's ``parents``). A trace saved before that field existed gets
    them from the rule the loop followed: after step s the survivors are ``ancestors`` (or every
    particle if s did not resample); SMC carries them over one to one; SMC-steer expands each
    unfinished survivor into ``n_beam`` consecutive copies and keeps a finished one as is. If that
    rule does not give the next step's particle count, the parents of that step are unknown (None).
    """
    parents: list[list[int | None]] = []
    for s, step in enumerate(steps):
        n = len(step["particles"])
        if s == 0:
            parents.append([None] * n)
            continue
        if step.get("parents") is not None:
            parents.append(list(step["parents"]))
            continue
        prev = steps[s - 1]
        survivors = prev["ancestors"] if prev.get("resampled") else range(len(prev["particles"]))
        expanded: list[int | None] = []
        for a in survivors:
            expanded += [a] * (1 if prev["particles"][a]["finished"] else n_beam)
        parents.append(expanded if len(expanded) == n else [None] * n)
    return parents


def particle_state(particle: dict[str, Any]) -> str:
    """``dead`` (weight -inf), ``finished`` or ``running``."""
    if not particle["alive"]:
        return "dead"
    return "finished" if particle["finished"] else "running"


def view_model(data: dict[str, Any]) -> dict[str, Any]:
    """What the page draws: per step, each particle's text, inherited prefix length, weight, state."""
    steps = data["steps"]
    meta = data.get("meta") or {}
    parents = parent_indices(steps, int(meta.get("n_beam", 1)))
    view_steps = []
    for s, (step, step_parents) in enumerate(zip(steps, parents, strict=True)):
        log_w = [-math.inf if p["log_weight"] is None else p["log_weight"] for p in step["particles"]]
        rows = []
        for p, w, parent in zip(step["particles"], normalise(log_w), step_parents, strict=True):
            text = str(p["text"])
            before = "" if parent is None else str(steps[s - 1]["particles"][parent]["text"])
            rows.append({
                "text": text,
                "kept": len(os.path.commonprefix([before, text])),
                "weight": float(w),
                "log_weight": p["log_weight"],
                "state": particle_state(p),
                "parent": parent,
            })
        view_steps.append({
            "step": step["step"], "ess": step["ess"], "resampled": bool(step.get("resampled")),
            "particles": rows,
        })
    return {
        "algorithm": data.get("algorithm", "smc"),
        "n_particles": data.get("n_particles", 0),
        "meta": meta,
        "steps": view_steps,
        "final": data.get("final"),
    }


def _json_safe(x: Any) -> Any:
    """Replace NaN and infinities (which JSON cannot hold) by None, recursively."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    return x


def embed_json(obj: Any) -> str:
    """JSON safe inside a ``<script>`` element: ``<``, ``>`` and ``&`` become ``\\u`` escapes."""
    text = json.dumps(_json_safe(obj), ensure_ascii=False, allow_nan=False, default=repr)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_html(trace: Trace | dict[str, Any] | str | Path) -> str:
    """One self-contained HTML page showing the run recorded in ``trace``."""
    template = resources.files(__package__).joinpath("view_template.html").read_text(encoding="utf-8")
    return template.replace(_DATA_SLOT, embed_json(view_model(trace_data(trace))))
