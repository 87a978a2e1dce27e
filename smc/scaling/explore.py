"""Outcome-based exploration at inference: keep rare final answers alive through resampling.

After Song, Kempe and Munos (arXiv 2509.06941), who add answer-rarity bonuses to RL advantages;
here the same bonuses steer SMC resampling instead. For a particle whose answer ``a`` is known
(`revealed_answer`), with ``N(a)`` the number of particles that have revealed ``a`` so far in the
run and ``n`` the population size:

- historical bonus (UCB-Con): ``b_ucb(a) = min(1, 1 / sqrt(N(a))) - b0``: positive for answers
  seen fewer than ``1 / b0**2`` times, negative for common ones;
- batch bonus: ``b_batch_i = -(1/n) * #{j != i : a_j = a_i}`` with ``n`` the population size:
  zero iff the answer is unique in the current population, never below -1.

`Exploration` is a ``reweight`` policy for `smc`: after every step it gives each answered particle
the log-potential ``weight * (b_ucb + batch_weight * b_batch)`` and unanswered ones 0.

What it changes. Only resampling: whenever SMC resamples (the decision itself still uses the
program's weights, so exploration never adds resampling events), children are drawn in
proportion to ``w_i * exp(weight * b_i)`` instead of ``w_i``, i.e. from the population's
empirical target tilted by answer rarity, so particles repeating a common answer get fewer
children and rare answers and particles still reasoning get more. The tilt is removed from the
children's weights (they carry ``logmeanexp(log w + log g) - log g(ancestor)``, as after a twist),
so the final weighted population targets the program's own posterior and ``log_ml`` stays
unbiased: resampling by any positive function of the current population, with that function
divided back out, preserves the expected total weight. Its variance grows, though: copies are
spent on particles the target weighs less.

Why correct answers keep their support. The potential is bounded, ``exp(weight * b)`` lies in
``[exp(-weight * (b0 + batch_weight)), exp(weight * (1 - b0))]`` whatever the population size, so
no particle's resampling weight is ever set to zero: every answer the program can reach, the
correct one included, keeps a positive chance to be copied, and the final weights are properly
weighted for the same target as plain SMC. ``weight = 0`` returns zeros and reproduces plain SMC
bit for bit, unless the program twists a particle in the step that finishes it (see `smc`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Sequence

import numpy as np

from ..model import Model
from .answers import AnswerFn, revealed_answer

SEEN = "_exploration_seen"  # set on a particle once its answer is counted; copies inherit it


def ucb_bonus(count: int) -> float:
    """``min(1, 1/sqrt(count))``, in (0, 1], 1 for ``count <= 1``, non-increasing in ``count``."""
    return 1.0 if count <= 1 else 1.0 / math.sqrt(count)


def batch_penalty(answers: Sequence[Hashable | None]) -> np.ndarray:
    """``-(k - 1) / n`` for a particle whose answer has ``k`` copies among ``n``; 0 without an answer."""
    n = len(answers)
    copies = Counter(a for a in answers if a is not None)
    return np.array([0.0 if a is None else -(copies[a] - 1) / n for a in answers])


class Exploration:
    """A ``reweight`` policy rewarding rare answers (see the module docstring).

    Args:
        weight: scale of the log-potential (0 = plain SMC).
        b0: the UCB-Con offset; answers seen more than ``1 / b0**2`` times get a negative bonus.
        batch_weight: scale of the within-population repetition penalty.
        answer_fn: reads a particle's answer (default `revealed_answer`: the ``answer`` attribute,
            or the output once finished).

    One instance may serve many runs: its counts restart at step 1 of every run.
    """

    def __init__(self, weight: float = 1.0, *, b0: float = 0.5, batch_weight: float = 2.0,
                 answer_fn: AnswerFn | None = None):
        if weight < 0 or b0 < 0 or batch_weight < 0:
            raise ValueError("Exploration needs weight, b0 and batch_weight >= 0")
        self.weight, self.b0, self.batch_weight = float(weight), float(b0), float(batch_weight)
        self.answer_fn = answer_fn or revealed_answer
        self.counts: Counter = Counter()

    def __repr__(self) -> str:
        return f"Exploration(weight={self.weight}, b0={self.b0}, batch_weight={self.batch_weight})"

    def __call__(self, particles: Sequence[Model], step: int) -> np.ndarray:
        """Count newly revealed answers, then return each particle's log-potential."""
        if step == 1:
            self.counts.clear()
        answers = [self.answer_fn(p) if p.alive else None for p in particles]
        for p, a in zip(particles, answers, strict=True):
            if a is not None and not getattr(p, SEEN, False):
                self.counts[a] += 1
                setattr(p, SEEN, True)
        if self.weight == 0.0:
            return np.zeros(len(particles))
        ucb = np.array([0.0 if a is None else ucb_bonus(self.counts[a]) - self.b0 for a in answers])
        return self.weight * (ucb + self.batch_weight * batch_penalty(answers))
