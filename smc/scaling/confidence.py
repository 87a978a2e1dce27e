"""Stated confidence: RLCR's answer/confidence tags, and confidence as a particle weight.

A response in RLCR's format ends with ``<answer>A</answer>`` and ``<confidence>q</confidence>``
with q a number in [0, 1]. `parse_tagged` reads them (the last tag of each kind wins); a missing
answer, or a confidence that is missing, not a number or outside [0, 1], is a format failure and
reads as None.

`confidence_log_weight` turns a stated confidence into a permanent factor ``max(q, floor)^power``
on a particle's weight: the program's target becomes its prior times ``max(q, floor)^power`` on
the outputs it can produce and that pass ``check``, and ``power = 0`` leaves the target unchanged.
This reweights the posterior (the ``likelihood`` vote); the ``confidence`` vote of
`selfsteer.smc.scaling.aggregate` is another thing: it sums stated confidences and ignores the
importance weights.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
CONFIDENCE_TAG = re.compile(r"<confidence>(.*?)</confidence>", re.DOTALL)
CONFIDENCE_FLOOR = 0.01


@dataclass(frozen=True)
class Tagged:
    """What a tagged response states: its reasoning (text before the last answer tag), answer and
    confidence (None where the format failed)."""

    reasoning: str
    answer: str | None
    confidence: float | None


def parse_confidence(text: str) -> float | None:
    """``text`` as a confidence in [0, 1] (a trailing "%" means a percentage), else None."""
    t = text.strip()
    scale = 1.0
    if t.endswith("%"):
        t, scale = t[:-1].strip(), 0.01
    try:
        q = float(t) * scale
    except ValueError:
        return None
    return q if math.isfinite(q) and 0.0 <= q <= 1.0 else None


def parse_tagged(text: str) -> Tagged:
    """Read the last ``<answer>`` and ``<confidence>`` tags of ``text`` (see the module docstring)."""
    answers = list(ANSWER_TAG.finditer(text))
    confidences = CONFIDENCE_TAG.findall(text)
    answer = answers[-1].group(1).strip() if answers else None
    reasoning = text[: answers[-1].start()].strip() if answers else text.strip()
    confidence = parse_confidence(confidences[-1]) if confidences else None
    return Tagged(reasoning, answer or None, confidence)


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
