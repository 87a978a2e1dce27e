"""The two-method contract every objective offers the training loop.

- ``collect(questions, step=...) -> Batch``: everything done without gradients (rollouts,
  rewards, advantages; pair sampling and labelling; context lookup). It may update per-question
  state (exploration counts).
- ``loss(part, norm) -> (loss, stats)``: the differentiable loss of one micro-batch. Losses and
  stats are *contributions* normalised by the whole step's `Normaliser`, so summing them over the
  micro-batches gives the step's values and gradient accumulation does not change the gradient.

``stage(step)`` numbers training stages (ThinkPrune); the loop restarts the optimiser when it
changes. Objectives are built by `selfsteer.training.objectives.build_objective`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from ..losses import Normaliser
from ..questions import Question


def split(items: Sequence[Any], n: int) -> list[list[Any]]:
    """``items`` in ``n`` contiguous, near-equal, non-empty parts (fewer if there are fewer items)."""
    n = max(1, min(n, len(items)))
    size, extra = divmod(len(items), n)
    parts, start = [], 0
    for i in range(n):
        end = start + size + (1 if i < extra else 0)
        parts.append(list(items[start:end]))
        start = end
    return parts


@dataclass
class Batch:
    """What ``collect`` returns: the units the loss is computed on, the step's normaliser and
    metrics about the collection (rewards, lengths, answers...)."""

    items: list[Any]
    norm: Normaliser
    metrics: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def parts(self, n: int) -> list[list[Any]]:
        return split(self.items, n)


class Objective(Protocol):
    name: str

    def collect(self, questions: Sequence[Question], *, step: int) -> Batch: ...

    def loss(self, part: list[Any], norm: Normaliser) -> tuple[torch.Tensor, dict[str, float]]: ...

    def stage(self, step: int) -> int: ...
