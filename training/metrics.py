"""Metrics of sampled groups: calibration (`ece`, `brier`, `auroc`, shared with test-time
scaling in `selfsteer.smc.scaling.metrics`) and `distinct_answers`, the mean number of distinct
answers per group."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from selfsteer.smc.scaling.metrics import auroc, brier, ece

__all__ = ["auroc", "brier", "distinct_answers", "ece"]


def distinct_answers(groups: Sequence[Sequence[str | None]]) -> float:
    """Mean number of distinct answers per group (a missing answer counts as one more answer)."""
    if not groups:
        return float("nan")
    return float(np.mean([len(set(g)) for g in groups]))
