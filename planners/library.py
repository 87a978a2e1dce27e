"""`LibraryPlanner`: the offline planner that picks a hand-written program and fills it in.

No planner LM is needed. For a task it

1. embeds the task with the bundled all-MiniLM-L6-v2 and compares it with each library
   program's description and example tasks (cosine similarity; a program scores its best match);
2. takes the programs scoring within ``margin`` of the top one and reads each one's parameters
   from the task with rules (`planners.extract`); among those whose parameters are found and
   valid, the one that reads the most parameters from the task wins (it accounts for more of
   the task's constraints), ties going to the more similar;
3. raises `NoProgramFits`, with a plain message that suggests configuring a planner LM, when
   the best score is below ``threshold`` or no candidate's parameters can be read (with a
   ``param_lm``, the best program's parameters are first asked of that LM under their JSON
   schema).

Before that it reads every constraint the task states with the constraint vocabulary
(`programs.vocabulary`). A task naming a constraint outside the vocabulary (rhyme, syllables...)
gets `NoProgramFits` naming it. A library program is used only when its ``SPEC.covers`` holds
every kind the task states; otherwise the planner composes one program enforcing all of them
(`programs.compose`), shown as Python source that passes the planner validator.

With ``feedback`` (the previous attempt failed) it moves on to the next candidate.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from selfsteer.programs.compose import ComposedProgram, composed_source, interpretation
from selfsteer.programs.registry import all_programs
from selfsteer.programs.vocabulary import KINDS, Constraint, flat_values, parse_prose, unsupported
from selfsteer.smc import LanguageModel, TextModel
from selfsteer.smc.scaling.embed import Embedder, load_embedder

from .embed import embed_cached
from .execute import MODEL_LOAD_LOCK
from .extract import ExtractionError, extract_params
from .lm_params import lm_params
from .plan import NoProgramFits, Plan

CONFIGURE_LM = (
    "Configure a planner LM to have a program written for it: --planner openai (with "
    "SELFSTEER_PLANNER_URL / SELFSTEER_PLANNER_MODEL) or --planner qwen-coder."
)


@dataclass(frozen=True)
class Candidate:
    """A library program and how well the task matches it (cosine similarity, best text)."""

    program: type[TextModel]
    score: float
    matched: str


class LibraryPlanner:
    """Picks a library program by embedding similarity and fills its parameters by rules.

    Args:
        programs: the library (default: every program in ``selfsteer.programs``).
        embedder: an `Embedder` (default: the bundled all-MiniLM-L6-v2, loaded on first use).
        threshold: the lowest similarity at which a program can fit the task.
        margin: candidates scoring within this of the best one are tried in order.
        param_lm: an LM (e.g. ``load_lm()``, the bundled follower) that fills in the best
            program's parameters under their JSON schema when the rules cannot read them
            (`planners.lm_params`); None (default): rules only.
    """

    name = "library"

    def __init__(
        self,
        *,
        programs: Sequence[type[TextModel]] | None = None,
        embedder: Embedder | None = None,
        threshold: float = 0.45,
        margin: float = 0.25,
        param_lm: LanguageModel | None = None,
    ):
        library = all_programs() if programs is None else list(programs)
        self.programs = [cls for cls in library if cls is not ComposedProgram]
        if not self.programs:
            raise ValueError("the library planner needs at least one library program")
        self.threshold, self.margin, self.param_lm = threshold, margin, param_lm
        self._embedder = embedder
        self._texts: list[str] = []
        self._owners: list[int] = []
        for i, cls in enumerate(self.programs):
            for text in [cls.SPEC.description, *(task for task, _ in cls.SPEC.examples)]:
                self._texts.append(text)
                self._owners.append(i)
        self._vectors: np.ndarray | None = None
        self._tried: dict[str, int] = {}

    @property
    def embedder(self) -> Embedder:
        with MODEL_LOAD_LOCK:  # planners run in worker threads; see MODEL_LOAD_LOCK
            if self._embedder is None:
                self._embedder = load_embedder()
        return self._embedder

    def rank(self, task: str) -> list[Candidate]:
        """Every program with its best similarity to ``task``, best first."""
        if self._vectors is None:
            self._vectors = embed_cached(self.embedder, self._texts)
        sims = self._vectors @ self.embedder([task])[0]
        best: dict[int, tuple[float, str]] = {}
        for owner, sim, text in zip(self._owners, sims, self._texts, strict=True):
            if owner not in best or sim > best[owner][0]:
                best[owner] = (float(sim), text)
        ranked = [Candidate(self.programs[i], s, t) for i, (s, t) in best.items()]
        return sorted(ranked, key=lambda c: -c.score)

    def candidates(self, task: str) -> list[tuple[Candidate, dict[str, Any]]]:
        """The fitting programs with their parameters, in the order the planner tries them."""
        ranked = self.rank(task)
        top = ranked[0]
        if top.score < self.threshold:
            raise NoProgramFits(
                f"No library program fits this task (closest: {top.program.SPEC.name!r}, similarity "
                f"{top.score:.2f} < {self.threshold:.2f}). {CONFIGURE_LM}"
            )
        found, problems = [], []
        for cand in ranked:
            if cand.score < max(self.threshold, top.score - self.margin):
                break
            try:
                params = cand.program.SPEC.validate(extract_params(cand.program.SPEC.name, task))
            except (ExtractionError, ValueError) as e:
                problems.append(f"{cand.program.SPEC.name}: {e}")
                continue
            found.append((cand, params))
        found.sort(key=lambda cp: -len(cp[1]))  # stable: among equals, the more similar first
        if not found and self.param_lm is not None:
            try:
                found.append((top, lm_params(self.param_lm, top.program.SPEC, task)))
            except ExtractionError as e:
                problems.append(f"{top.program.SPEC.name} (parameter LM): {e}")
        if not found:
            raise NoProgramFits(
                "A library program looks close to this task but its parameters could not be read "
                f"from it ({'; '.join(problems)}). Rephrase the numbers and words plainly. {CONFIGURE_LM}"
            )
        return found

    def plan(self, task: str, *, feedback: str | None = None) -> Plan:
        """A library `Plan` for ``task``; with ``feedback``, the next candidate after the last one."""
        if not isinstance(task, str) or not task.strip():
            raise ValueError("the task must be non-empty text")
        outside = unsupported(task)
        if outside:
            raise NoProgramFits(
                f"This task asks for {' and '.join(outside)}, which the offline planner's constraint vocabulary "
                f"does not cover (it knows: {', '.join(KINDS)}, item lists with prices, JSON records, regexes). "
                f"{CONFIGURE_LM}"
            )
        plans = self.plans(task)
        attempt = self._tried.get(task, -1) + 1 if feedback else 0
        if attempt >= len(plans):
            raise NoProgramFits(
                f"The programs that fit this task ({', '.join(p.program_name or p.class_name for p in plans)}) "
                f"all failed; last error: {feedback}. {CONFIGURE_LM}"
            )
        self._tried[task] = attempt
        return plans[attempt]

    def plans(self, task: str) -> list[Plan]:
        """The plans the planner tries for ``task``, in order: the library programs that cover
        every stated constraint, then (if the task states any) the composed program."""
        unit, constraints = parse_prose(task)
        try:
            found = self.candidates(task)
        except NoProgramFits:
            if not constraints:
                raise
            found = []
        plans = [library_plan(c.program, p) for c, p in found if not constraints or covers(c.program, p, constraints)]
        return plans + [composed_plan(unit, constraints)] if constraints else plans


def library_plan(cls: type[TextModel], params: dict[str, Any]) -> Plan:
    return Plan(
        source=inspect.getsource(inspect.getmodule(cls)),
        class_name=cls.__name__,
        params=params,
        origin="library",
        program_name=cls.SPEC.name,
    )

def covers(program: type[TextModel], params: dict[str, Any], constraints: Sequence[Constraint]) -> bool:
    """``program`` with ``params`` expresses every one of ``constraints``: it covers their kinds
    and every number, word and letter they state is among its parameters (else the rules
    dropped one, e.g. a second banned letter or an exact word count)."""
    stated = set().union(*(c.values() for c in constraints)) if constraints else set()
    return {c.KIND for c in constraints} <= program.SPEC.covers and stated <= flat_values(list(params.values()))


def composed_plan(unit: str, constraints: Sequence[Constraint]) -> Plan:
    """A plan running `ComposedProgram`; its source is the same program as one validated class.

    Raises `NoProgramFits` naming the conflict when the constraints contradict each other."""
    try:
        ComposedProgram.merge(unit, constraints)
    except ValueError as e:
        raise NoProgramFits(f"The task's constraints cannot all hold: {e}.") from None
    return Plan(
        source=composed_source(unit, constraints),
        class_name="ComposedTask",
        params={"unit": unit, "constraints": [c.to_dict() for c in constraints]},
        origin="library",
        program_name=ComposedProgram.SPEC.name,
        interpretation=interpretation(unit, constraints),
    )
