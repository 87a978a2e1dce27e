"""Evaluate a planner on a task set, side by side with the follower alone.

A task file is JSON lines: ``{"task": "...", "family": "...", "constraints": {...},
"checker": {"program": NAME, "params": {...}}}``; only ``task`` is required. Each task is scored
by one checker, the same for both systems: the independent constraint checker
(`selfsteer.programs.tasks`) when the line has ``constraints``, else the named library program's
``check`` with those parameters, else the program the library planner picks for the task, else
(``"self"``) the solving program's own ``check`` (the baseline then goes unscored).

- **selfsteer**: `solve_async` with the planner; *pass* = its answer passes the checker;
  *weighted pass@1* = the posterior weight on outputs that pass. An LM planner's few-shot
  examples leave out the task's own family (leave-one-family-out).
- **follower alone** (the baseline): ``n_particles`` plain samples from the follower prompted
  with the task, equally weighted; *pass* = the most frequent sample passes; *weighted pass@1* =
  the fraction of samples that pass.

With a ``judge`` (`selfsteer.planners.coherence`), every task's selfsteer answer and the follower
alone's answer also get coherency figures (judge score 1-10, judge log-likelihood per token,
English word share), judged after all tasks ran so the timings exclude the judge.

Tasks run concurrently in one event loop, at most ``jobs`` at a time: library programs and the
baseline batch their LM calls on one shared follower; sandboxed programs run in their own
processes; planner calls run in threads.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from selfsteer.smc import TextModel, smc_async

from .cache import ProgramCache
from .coherence import Coherence, CoherenceJudge, summarize
from .execute import RunSettings, follower_lm, library_class
from .lm_planner import LMPlanner
from .plan import NoProgramFits, Plan
from .sandbox import Limits
from .solve import solve_async


@dataclass
class TaskSpec:
    task: str
    family: str | None = None
    checker: dict[str, Any] | None = None
    constraints: dict[str, Any] | None = None


@dataclass
class TaskOutcome:
    """One task's scores for selfsteer and for the follower alone (None: not scored)."""

    task: str
    family: str | None
    checker: str
    passed: bool | None
    weighted_pass: float | None
    seconds: float
    attempt: int | None
    error: str | None
    answer: Any
    baseline_passed: bool | None
    baseline_weighted_pass: float | None
    baseline_seconds: float
    baseline_answer: Any
    coherence: Coherence | None = None
    baseline_coherence: Coherence | None = None


SYSTEMS = {"selfsteer": "", "follower alone": "baseline_"}


@dataclass
class EvalReport:
    planner: str
    outcomes: list[TaskOutcome] = field(default_factory=list)
    judge: str | None = None

    def _mean(self, name: str) -> float | None:
        values = [float(getattr(o, name)) for o in self.outcomes if getattr(o, name) is not None]
        return sum(values) / len(values) if values else None

    def totals(self, outcomes: list[TaskOutcome] | None = None) -> dict[str, dict[str, float | None]]:
        """Per system: means of pass, weighted pass@1 and time, and (when judged) the coherency figures."""
        outcomes = self.outcomes if outcomes is None else outcomes
        part = EvalReport(self.planner, outcomes, self.judge)
        out = {}
        for system, prefix in SYSTEMS.items():
            out[system] = {"pass_rate": part._mean(f"{prefix}passed"), "weighted_pass@1": part._mean(f"{prefix}weighted_pass"),
                           "seconds_per_task": part._mean(f"{prefix}seconds")}
            if self.judge:
                out[system].update(summarize([c for o in outcomes if (c := getattr(o, f"{prefix}coherence"))]))
        return out

    def by_family(self) -> dict[str, dict[str, dict[str, float | None]]]:
        families = sorted({o.family or "" for o in self.outcomes})
        return {f: self.totals([o for o in self.outcomes if (o.family or "") == f]) for f in families}

    def table(self) -> str:
        def fmt(x: float | None, kind: str = "%") -> str:
            if x is None:
                return "n/a"
            return {"%": f"{100 * x:5.1f}%", "s": f"{x:6.1f}s", "f": f"{x:5.2f}"}[kind]

        judged = bool(self.judge)
        head = f"{'':16} {'pass rate':>10} {'weighted pass@1':>16} {'time/task':>10}"
        if judged:
            head += f" {'coherency':>10} {'loglik/tok':>10} {'English words':>14}"
        rows = [head]
        for name, t in self.totals().items():
            row = (f"{name:16} {fmt(t['pass_rate']):>10} {fmt(t['weighted_pass@1']):>16} "
                   f"{fmt(t['seconds_per_task'], 's'):>10}")
            if judged:
                row += f" {fmt(t['coherency'], 'f'):>10} {fmt(t['loglik_per_token'], 'f'):>10} {fmt(t['word_share']):>14}"
            rows.append(row)
        judge = f"   judge: {self.judge}" if judged else "   coherency: not judged"
        return f"planner: {self.planner}   tasks: {len(self.outcomes)}{judge}\n" + "\n".join(rows)

    def to_json(self) -> str:
        return json.dumps({"planner": self.planner, "judge": self.judge, "totals": self.totals(),
                           "by_family": self.by_family(), "tasks": [asdict(o) for o in self.outcomes]},
                          indent=2, default=repr)

    def plot(self, path: str | Path) -> Path:
        """A PNG: pass rate against coherency per system when judged, else a bar chart of the pass rates."""
        if self.judge:
            groups = {"all": self.totals(), **self.by_family()}
            points = [(g, system, t[system]["pass_rate"], t[system]["coherency"])
                      for g, t in groups.items() for system in SYSTEMS if t[system]["coherency"] is not None]
            return plot_pass_vs_coherency(points, path, title=f"{len(self.outcomes)} tasks, planner {self.planner}, "
                                                                  f"judge {self.judge}")
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        totals = self.totals()
        metrics = ["pass_rate", "weighted_pass@1"]
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for i, (name, t) in enumerate(totals.items()):
            values = [t[m] or 0.0 for m in metrics]
            bars = ax.bar([j + 0.38 * i for j in range(len(metrics))], values, width=0.36, label=name)
            ax.bar_label(bars, labels=[f"{v:.0%}" for v in values], padding=2)
        ax.set_xticks([j + 0.19 for j in range(len(metrics))], metrics)
        ax.set_ylim(0, 1.3)
        ax.set_ylabel("fraction of tasks")
        ax.set_title(f"{len(self.outcomes)} tasks, planner {self.planner}")
        ax.legend(loc="upper center", ncols=2)
        fig.tight_layout()
        path = Path(path)
        fig.savefig(path, dpi=120)
        plt.close(fig)
        return path


def plot_pass_vs_coherency(points: list[tuple[str, str, float | None, float]], path: str | Path, *,
                           title: str = "") -> Path:
    """A PNG scatter of pass rate against coherency: one point per (group, system, pass rate, coherency).

    Each system has its own colour; groups (task sets, families) are labelled beside their points,
    and a group's systems are joined by a grey line (DisCIPL's Table 1 as a picture).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"]
    systems = list(dict.fromkeys(s for _, s, _, _ in points))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for group in dict.fromkeys(g for g, _, _, _ in points):
        mine = [(p or 0.0, c) for g, _, p, c in points if g == group]
        ax.plot([c for _, c in mine], [p for p, _ in mine], color="0.8", zorder=1)
        for p, c in mine:
            ax.annotate(group, (c, p), fontsize=7, xytext=(4, 3), textcoords="offset points")
    for i, system in enumerate(systems):
        mine = [(p or 0.0, c) for _, s, p, c in points if s == system]
        ax.scatter([c for _, c in mine], [p for p, _ in mine], color=colours[i % len(colours)], label=system, zorder=2)
    ax.set_xlim(1, 10)
    ax.set_ylim(-0.05, 1.1)
    ax.set_xlabel("coherency (judge, 1-10)")
    ax.set_ylabel("pass rate")
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def read_tasks(path: str | Path) -> list[TaskSpec]:
    """Task specs from a JSON-lines file (blank lines skipped); errors name the line."""
    specs = []
    for i, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            specs.append(TaskSpec(task=row["task"], family=row.get("family"), checker=row.get("checker"),
                                  constraints=row.get("constraints")))
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{path}:{i}: each line must be a JSON object with a 'task' string ({e})") from None
    return specs


class FollowerAlone(TextModel):
    """The baseline: the follower prompted with the task writes until EOS (plain sampling)."""

    def __init__(self, lm, task: str, *, max_tokens: int = 96):
        super().__init__(lm, task, max_tokens=max_tokens)

    async def step(self):
        chunk = await self.extend(max_tokens=self.max_tokens, allow_eos=True)
        if not chunk.eos:
            self.condition(False)  # ran past max_tokens without ending
        self.finish(self.text.strip())


def for_family(planner, family: str | None):
    """An LM planner whose few-shot examples leave out ``family`` (other planners unchanged)."""
    if family is None or not isinstance(planner, LMPlanner):
        return planner
    clone = copy.copy(planner)
    clone.exclude_family, clone._last = family, {}
    return clone


Checker = Callable[[Any], bool]


def _safe(check: Checker) -> Checker:
    def passes(output: Any) -> bool:
        try:
            return bool(check(output))
        except Exception:  # noqa: BLE001 - a checker crash on odd output counts as a fail
            return False

    return passes


def task_checker(spec: TaskSpec, lm, library_planner) -> tuple[str, Checker | None]:
    """The checker for a task (see the module docstring): its name and ``output -> bool``."""
    if spec.constraints:
        from selfsteer.programs.tasks import passes

        return "constraints", _safe(lambda output: isinstance(output, str) and passes(spec.constraints, output))
    plan = None
    if spec.checker:
        plan = Plan(source="", class_name="", params=spec.checker.get("params", {}), origin="library",
                    program_name=spec.checker["program"])
    elif library_planner is not None:
        try:
            plan = library_planner.plan(spec.task)
        except NoProgramFits:
            plan = None
    if plan is None:
        return "self", None
    cls = library_class(plan)
    params = cls.SPEC.validate(dict(plan.params)) if hasattr(cls, "SPEC") else plan.params
    return f"{plan.program_name}{json.dumps(params, sort_keys=True)}", _safe(cls(lm, spec.task, **params).check)


async def evaluate_async(
    specs: list[TaskSpec], *, planner=None, jobs: int = 2, n_particles: int = 8, follower: str | None = None,
    attempts: int = 3, seed: int | None = 0, limits: Limits | None = None, cache: ProgramCache | bool | None = None,
    reuse: bool = False, baseline_tokens: int = 96, progress: bool = True, judge: CoherenceJudge | None = None,
) -> EvalReport:
    """Run every task (at most ``jobs`` at once) with selfsteer and with the follower alone, then judge the answers."""
    from .load import load_planner
    from .plan import planner_name

    planner = load_planner(planner)
    lm = await asyncio.to_thread(follower_lm, RunSettings(follower=follower))
    try:
        library = load_planner("library")
    except ImportError:
        library = None
    report = EvalReport(planner=planner_name(planner), judge=judge.name if judge else None)
    gate = asyncio.Semaphore(jobs)
    bar = tqdm(total=len(specs), desc="eval", unit="task", disable=not progress)

    async def one(spec: TaskSpec) -> TaskOutcome:
        async with gate:
            checker_name, checker = await asyncio.to_thread(task_checker, spec, lm, library)
            t0 = time.monotonic()
            solved = await solve_async(spec.task, planner=for_family(planner, spec.family), n_particles=n_particles, follower=follower, lm=lm,
                                       attempts=attempts, seed=seed, limits=limits, cache=cache, reuse=reuse)
            seconds = time.monotonic() - t0
            posterior = solved.summary.posterior if solved.summary else []
            if checker is None:
                passed, weighted = solved.check_passed, sum(p for _, p in posterior)
            else:
                passed = solved.answer is not None and checker(solved.answer)
                weighted = sum(p for o, p in posterior if checker(o))
            t1 = time.monotonic()
            base = await smc_async(FollowerAlone(lm, spec.task, max_tokens=baseline_tokens), n_particles,
                                   ess_threshold=0.0, seed=seed)
            outputs = [p.output for p in base.particles if p.finished and p.alive]
            base_answer = base.best
            if checker is None or not outputs:
                b_pass, b_weighted = (None, None) if checker is None else (False, 0.0)
            else:
                b_pass = checker(base_answer)
                b_weighted = sum(checker(o) for o in outputs) / n_particles
            bar.update(1)
            return TaskOutcome(spec.task, spec.family, checker_name, passed, weighted, seconds, solved.attempt,
                               solved.error, solved.answer, b_pass, b_weighted, time.monotonic() - t1, base_answer)

    try:
        report.outcomes = list(await asyncio.gather(*(one(s) for s in specs)))
    finally:
        bar.close()
    if judge is not None:
        answers = [text_of(o.answer) for o in report.outcomes] + [text_of(o.baseline_answer) for o in report.outcomes]
        scores = await judge.score_many_async(answers)
        n = len(report.outcomes)
        for o, own, alone in zip(report.outcomes, scores[:n], scores[n:], strict=True):
            o.coherence, o.baseline_coherence = own, alone
    return report


def text_of(answer: Any) -> str | None:
    """An answer as the text the judge reads (structured answers as JSON)."""
    if answer is None or isinstance(answer, str):
        return answer
    try:
        return json.dumps(answer)
    except TypeError:
        return str(answer)


def evaluate(specs: list[TaskSpec] | str | Path, **kwargs: Any) -> EvalReport:
    """`evaluate_async` from synchronous code; ``specs`` may be a JSON-lines path."""
    from selfsteer.smc.inference import run_sync

    if isinstance(specs, (str, Path)):
        specs = read_tasks(specs)
    return run_sync(evaluate_async(specs, **kwargs))
