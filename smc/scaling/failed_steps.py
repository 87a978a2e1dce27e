"""The failed-step fraction of an SMC run, read from its trace.

Feng et al. (arXiv 2509.19284) convert a chain of thought into a reasoning graph and count the
steps spent in branches that were later abandoned; the lower that fraction, the likelier the
answer is right. An SMC run has an explicit search tree, so no extractor is needed: every
particle-step is a node, resampling links children to ancestors, and a branch is abandoned when no
particle of the final population (finished and alive) descends from it.

    FSF = (particle-steps with no surviving descendant) / (all particle-steps)

A particle-step is one call of ``step()`` on an unfinished particle. FSF lies in [0, 1]: 0 when
every lineage reaches a surviving output, 1 when nothing survives. It needs the trace of `smc`
(run with ``record=True``); SMC-steer's pool expansions are not recorded there.
"""

from __future__ import annotations

import math
from typing import Any

from ..trace import Trace


def _entering_finished(steps: list[dict[str, Any]], t: int, i: int) -> bool:
    """Was particle ``i`` of step ``t`` already finished before that step (so not stepped)?"""
    if t == 0:
        return False
    prev = steps[t - 1]
    parent = prev["ancestors"][i] if prev["resampled"] else i
    return bool(prev["particles"][parent]["finished"])


def failed_step_fraction(trace: Trace | dict[str, Any]) -> float:
    """FSF of a recorded `smc` run (see the module docstring); nan for a run with no steps."""
    data = trace.data if isinstance(trace, Trace) else trace
    if data.get("algorithm") != "smc":
        raise ValueError(f"the failed-step fraction needs a trace of smc, got {data.get('algorithm')!r}")
    steps = data["steps"]
    if not steps:
        return math.nan
    last = steps[-1]
    final = [last["particles"][a] for a in last["ancestors"]] if last["resampled"] else last["particles"]
    surviving = {j for j, p in enumerate(final) if p["alive"] and p["finished"]}
    failed = total = 0
    for t in range(len(steps) - 1, -1, -1):
        step = steps[t]
        if step["resampled"]:
            surviving = {step["ancestors"][j] for j in surviving}
        for i in range(len(step["particles"])):
            if not _entering_finished(steps, t, i):
                total += 1
                failed += i not in surviving
    return failed / total if total else math.nan
