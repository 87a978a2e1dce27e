"""The failed-step fraction of an SMC run, read from its trace.

Feng et al. (arXiv 2509.19284) convert a chain of thought into a reasoning graph and count the
steps spent in branches that were later abandoned; the lower that fraction, the likelier the
answer is right. An SMC run has an explicit search tree, so no extractor is needed: every
particle-step is a node, resampling links children to ancestors, and a branch is abandoned when no
particle of the final population (finished and alive) descends from it.

    FSF = (particle-steps with no surviving descendant) / (all particle-steps)

A particle-step is one call of ``step()`` on an unfinished particle. FSF lies in [0, 1]: 0 when
every lineage reaches a surviving output, 1 when nothing survives. It needs the trace of `smc`
(run with ``record=True``), whose steps record each particle's parent.
"""

from __future__ import annotations

import math
from typing import Any

from ..trace import Trace
from ..view import parent_indices


def failed_step_fraction(trace: Trace | dict[str, Any]) -> float:
    """FSF of a recorded `smc` run (see the module docstring); nan for a run with no steps."""
    data = trace.data if isinstance(trace, Trace) else trace
    if data.get("algorithm") != "smc":
        raise ValueError(f"the failed-step fraction needs a trace of smc, got {data.get('algorithm')!r}")
    steps = data["steps"]
    if not steps:
        return math.nan
    parents = parent_indices(steps)
    last = steps[-1]
    carried = last["ancestors"] if last["resampled"] else range(len(last["particles"]))
    surviving = {a for a in carried if last["particles"][a]["alive"] and last["particles"][a]["finished"]}
    failed = total = 0
    for t in range(len(steps) - 1, -1, -1):
        for i, parent in enumerate(parents[t]):
            if t == 0 or not steps[t - 1]["particles"][parent]["finished"]:  # stepped, not carried finished
                total += 1
                failed += i not in surviving
        surviving = {parents[t][i] for i in surviving}
    return failed / total if total else math.nan
