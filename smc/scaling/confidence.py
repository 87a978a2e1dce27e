"""Stated confidence as a particle weight.

`confidence_log_weight` turns a stated confidence (read by `answers.parse_confidence`) into a
permanent factor ``max(q, floor)^power`` on a particle's weight: the program's target becomes its
prior times ``max(q, floor)^power`` on the outputs it can produce and that pass ``check``, and
``power = 0`` leaves the target unchanged. This reweights the posterior (the ``likelihood`` vote);
the ``confidence`` vote of `selfsteer.smc.scaling.answers` is another thing: it sums stated
confidences and ignores the importance weights.
"""

from __future__ import annotations

import math

CONFIDENCE_FLOOR = 0.01


def confidence_log_weight(confidence: float | None, power: float, floor: float = CONFIDENCE_FLOOR) -> float:
    """``power * log(max(q, floor))``; a missing confidence counts as ``floor``. 0 when power is 0."""
    if power < 0:
        raise ValueError(f"confidence power must be >= 0, got {power}")
    if power == 0:
        return 0.0
    if not 0.0 < floor <= 1.0:
        raise ValueError(f"confidence floor must lie in (0, 1], got {floor}")
    q = floor if confidence is None else max(float(confidence), floor)
    return power * math.log(q)
