"""`Model`: the base class of inference programs.

A program subclasses `Model` and writes ``async def step(self)``: one unit of work for one
particle. The engine runs a population of copies ("particles"), each with its own log-weight.

Proper weighting. The program defines an unnormalised target over finished outputs: the product
of every ``observe``/``score``/``condition`` factor along a run, times the distributions that
``sample`` draws from. Each primitive keeps the particle's log-weight properly weighted for it:

- ``x = await sample(p)``: ``x ~ p``; ``log_weight += 0`` (or the sampler's own weight, see
  `Distribution.propose`).
- ``x = await sample(p, proposal=q)``: ``x ~ q``; ``log_weight += log p(x) - log q(x)``.
- ``await observe(p, x)``: ``log_weight += log p(x)``. Equivalent to ``sample(p)`` followed by
  ``condition(sample == x)``, but with lower variance.
- ``condition(ok, reason=None)``: ``ok`` False sets ``log_weight = -inf`` and ends the particle.
- ``score(log_w)``: ``log_weight += log_w`` (a permanent factor; ``-inf`` kills the particle).
- ``twist(log_w)``: ``log_weight += log_w`` now, removed before the next step and on ``finish``
  (a temporary potential that guides resampling but does not change the target). It must be
  finite: a ``-inf`` potential could not be removed again, so use ``condition`` to rule a state out.
- ``finish(output)``: the particle is done; ``output`` is its result.

An increment of ``+inf`` or NaN is a program error (it would leave no finite weight to
normalise), raised with the program line that made it. Zero probability never raises to the caller: an impossible observation, a ``False`` condition or
a draw from a distribution with no mass kills the particle (weight ``-inf``, finished), and the
run goes on with the others. A dead particle keeps its cause in ``death`` (see `Model.death`),
which `Result` summarises.
"""

from __future__ import annotations

import copy
import linecache
import math
import sys
from typing import Any

import numpy as np

from .distributions import Distribution, ZeroProbability


class ParticleDied(BaseException):
    """Raised inside ``step`` to stop a particle whose weight became ``-inf``.

    A BaseException so that a program's ``except Exception`` does not swallow it; the engine
    catches it.
    """


class Model:
    """Base class of inference programs. Subclasses implement ``async def step(self)``.

    Optional hooks: ``async def start(self)`` runs once per particle before the first step, and
    ``check(output) -> bool`` verifies a finished particle's output (a failed check sets its weight
    to ``-inf``). ``immutable_properties()`` names attributes that particles share instead of
    copying (LMs and token masks are always shared).

    Attributes: ``self.finished`` (True once the particle finished or died), ``self.log_weight``
    and ``self.output`` (set by ``finish``).
    """

    def __init__(self) -> None:
        self.log_weight: float = 0.0
        self.finished: bool = False
        self.output: Any = None
        self.rng: np.random.Generator = np.random.default_rng()
        self._twist: float = 0.0
        self._check_passed: bool | None = None
        self.death: str | None = None  # why the particle died (None while alive); see `Result.deaths`
        self._death_recorded = False

    # ----- to override -------------------------------------------------------------------
    async def start(self) -> None:
        """Runs once for each particle before its first step."""

    async def step(self) -> None:
        """One unit of work for one particle: sample, observe, condition, maybe finish."""
        raise NotImplementedError(f"{type(self).__name__} must define `async def step(self)`")

    def check(self, output: Any) -> bool:
        """Verifier applied to each finished particle's output; False sets its weight to -inf."""
        return True

    def immutable_properties(self) -> set[str]:
        """Attribute names shared (not deep-copied) between particles."""
        return set()

    # ----- primitives --------------------------------------------------------------------
    async def sample(self, dist: Distribution, proposal: Distribution | None = None) -> Any:
        """Draw a value; see the module docstring for the weight update."""
        try:
            if proposal is None:
                value, log_w = await dist.propose(self.rng)
            else:
                value, log_q = await proposal.sample(self.rng)
                log_w = await dist.log_prob(value) - log_q
        except ZeroProbability as e:
            self._die(f"zero probability: {e}")
        dist.record(value)
        if proposal is not None:
            proposal.record(value)
        self._add(log_w)
        return value

    async def observe(self, dist: Distribution, value: Any) -> float:
        """Condition on ``value`` having been drawn from ``dist``: ``log_weight += log dist(value)``.

        Returns that log-probability.
        """
        log_p = await dist.log_prob(value)
        dist.record(value)
        self._add(log_p, "observe")
        return log_p

    def condition(self, ok: bool, reason: str | None = None) -> None:
        """Keep the particle only if ``ok``; otherwise its weight becomes -inf and it stops.

        The dead particle's ``death`` is ``reason`` when given, else the calling source line.
        """
        if not ok:
            self._die(reason or f"condition: {caller_line()}")

    def score(self, log_w: float) -> None:
        """Multiply the target by ``exp(log_w)`` (a permanent factor)."""
        self._add(log_w, "score")

    def twist(self, log_w: float) -> None:
        """Add a finite temporary potential, removed before the next step and on ``finish``."""
        log_w = float(log_w)
        if not math.isfinite(log_w):
            raise ValueError(
                f"twist({log_w}) is not finite: a twist is removed again, so it must be a finite number; "
                "use condition(False) to rule a state out"
            )
        self._twist += log_w
        self._add(log_w, "twist")

    def finish(self, output: Any = None) -> None:
        """End this particle with ``output`` as its result (removing any twist)."""
        self.untwist()
        self.output = output
        self.finished = True

    # ----- engine support ------------------------------------------------------------------
    @property
    def alive(self) -> bool:
        return self.log_weight > -math.inf

    def untwist(self) -> None:
        if self._twist != 0.0 and self.log_weight > -math.inf:
            self.log_weight -= self._twist
        self._twist = 0.0

    @property
    def completed(self) -> bool:
        """Finished alive: its output counts (a dead particle is ``finished`` but not completed)."""
        return self.finished and self.alive

    def _add(self, log_w: float, primitive: str = "sample") -> None:
        log_w = float(log_w)
        if math.isnan(log_w) or log_w == math.inf:
            raise ValueError(f"a log-weight increment is {log_w}; a weight factor must be a number below +inf "
                             "(check the score or the distribution's log-probability)")
        self.log_weight += log_w
        if self.log_weight == -math.inf:
            self._die(f"{primitive} of probability zero: {caller_line()}")

    def kill(self, cause: str) -> None:
        """Engine support: weight -inf and finished, recording ``cause`` (the first cause wins)."""
        self.log_weight = -math.inf
        self._twist = 0.0
        self.finished = True
        if self.death is None:
            self.death = cause

    def _die(self, cause: str) -> None:
        self.kill(cause)
        raise ParticleDied


    def clone(self) -> Model:
        """A deep copy sharing the attributes named by ``immutable_properties``."""
        memo: dict[int, Any] = {}
        for name in self.immutable_properties():
            value = getattr(self, name)
            memo[id(value)] = value
        return copy.deepcopy(self, memo)

    def describe(self) -> str:
        """A short text of this particle's state for traces (default: its output or repr)."""
        if self.output is not None:
            return str(self.output)
        for value in vars(self).values():
            text = getattr(value, "text", None)
            if isinstance(text, str):
                return text
        return ""


def caller_line() -> str:
    """``"file.py:12: source"`` for the innermost calling frame outside selfsteer.smc (the program's line)."""
    here = __file__.rsplit("/", 1)[0]
    frame = sys._getframe(1)
    while frame.f_back is not None and frame.f_code.co_filename.startswith(here):
        frame = frame.f_back
    path, line = frame.f_code.co_filename, frame.f_lineno
    source = linecache.getline(path, line).strip()
    return f"{path.rsplit('/', 1)[-1]}:{line}" + (f": {source}" if source else "")
