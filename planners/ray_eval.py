"""Task sets on a Ray cluster: ``selfsteer eval tasks.jsonl --ray [ADDRESS]`` and `solve_many`.

A `RayPool` starts ``workers`` Ray actors (one CPU each unless told otherwise); each loads the
follower and the planner once and runs many tasks, one at a time, with the same code as the
local run (`evaluate_async` on one task, or `solve_async`), so a task's result depends on its
seed and not on where it ran. Tasks that share a program (their checker's program) or a prompt
(their text) form a group, and a group goes to one worker (largest groups first, each to the
least-loaded worker), so a worker sees the same program again (warm prompt cache, one program
cache entry written by one process). A worker that dies loses no task: its unfinished tasks go
to the remaining workers (a replacement actor is started when none remain) and the report lists
them under ``ray.retried``.

Ray is an optional extra: ``pip install 'selfsteer[ray]'``. ``address`` is passed to
``ray.init``: None connects to ``RAY_ADDRESS`` or starts a local Ray, ``"auto"`` joins the
cluster this machine belongs to, ``"ray://HOST:10001"`` goes through Ray Client. The program
cache directory must be on storage every node sees for the cache to be shared.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .evaluate import EvalReport, TaskOutcome, TaskSpec
from .plan import Planner, planner_name
from .solve import SolveResult


def require_ray():
    """The ``ray`` module, or ImportError naming the extra to install."""
    try:
        import ray
    except ImportError:
        raise ImportError("Ray is not installed: pip install 'selfsteer[ray]' (or pip install ray)") from None
    return ray


def group_key(spec: TaskSpec) -> str:
    """What tasks share for worker affinity: the checker's program, else the task text."""
    if spec.checker and spec.checker.get("program"):
        return f"program:{spec.checker['program']}"
    return f"task:{spec.task}"


def assign(keys: Sequence[str], workers: int) -> list[int]:
    """A worker index per task: equal keys share a worker; largest groups first, each to the least-loaded."""
    groups: dict[str, list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    load, where = [0] * workers, [0] * len(keys)
    for members in sorted(groups.values(), key=lambda m: (-len(m), m[0])):
        w = min(range(workers), key=lambda j: (load[j], j))
        load[w] += len(members)
        for i in members:
            where[i] = w
    return where


class Worker:
    """One Ray actor's state: the planner and the follower, loaded once (see the module docstring)."""

    def __init__(self, planner: Planner | str | Callable[[], Planner] | None, follower: str | None):
        from .execute import RunSettings, follower_lm
        from .load import load_planner

        self.planner = load_planner(planner() if callable(planner) and not hasattr(planner, "plan") else planner)
        self.follower = follower
        self.lm = follower_lm(RunSettings(follower=follower))
        self.tasks = 0

    def info(self) -> dict[str, Any]:
        """This worker's process id, node and number of tasks run."""
        import ray

        return {"pid": os.getpid(), "node": ray.get_runtime_context().get_node_id(), "tasks": self.tasks,
                "planner": planner_name(self.planner)}

    def evaluate(self, spec: TaskSpec, options: dict[str, Any]) -> TaskOutcome:
        """`evaluate_async` on one task with ``options``, on this worker's follower and planner."""
        from selfsteer.smc.inference import run_sync

        from .evaluate import evaluate_async

        self.tasks += 1
        report = run_sync(evaluate_async([spec], planner=self.planner, follower=self.follower, jobs=1,
                                         progress=False, **options))
        return report.outcomes[0]

    def solve(self, task: str, options: dict[str, Any]) -> SolveResult:
        """`solve` with ``options`` on this worker's follower and planner."""
        from .solve import solve

        self.tasks += 1
        return solve(task, planner=self.planner, lm=self.lm, follower=self.follower, **options)


@dataclass
class RayReport(EvalReport):
    """An `EvalReport` plus where each task ran and which tasks were retried after a worker died."""

    workers: list[dict[str, Any]] = field(default_factory=list)
    placement: list[int] = field(default_factory=list)  # per task: the worker (index into workers) that ran it
    retried: list[dict[str, Any]] = field(default_factory=list)  # {"task": index, "worker": died, "error": ...}

    def table(self) -> str:
        lost = {r["worker"] for r in self.retried}
        note = (f"\nray: {len(self.workers)} workers; {len(lost)} died, {len(self.retried)} task(s) retried on "
                "another worker" if self.retried else f"\nray: {len(self.workers)} workers, none died")
        return super().table() + note

    def ray_summary(self) -> dict[str, Any]:
        return {"workers": self.workers, "placement": self.placement, "retried": self.retried}

    def to_json(self) -> str:
        import json

        data = json.loads(super().to_json())
        data["ray"] = self.ray_summary()
        return json.dumps(data, indent=2, default=repr)


class RayPool:
    """``workers`` Ray actors running tasks with one planner and follower (see the module docstring).

    ``planner`` is a `Planner`, a `load_planner` name or a function making one (each worker
    calls it, so planners that hold clients or models need not travel). ``options`` are the run
    ``actor_options`` go to Ray (e.g. ``{"num_gpus": 1}``; default one CPU per worker).
    """

    def __init__(self, *, workers: int | None = None, address: str | None = None,
                 planner: Planner | str | Callable[[], Planner] | None = None, follower: str | None = None,
                 actor_options: dict[str, Any] | None = None):
        ray = require_ray()
        if not ray.is_initialized():
            ray.init(address=address, logging_level="warning", log_to_driver=False)
        self.ray = ray
        self.actor_options = {"num_cpus": 1, **(actor_options or {})}
        n = workers or max(1, int(ray.cluster_resources().get("CPU", 1) // self.actor_options["num_cpus"]))
        self._args = (planner, follower)
        self._cls = ray.remote(Worker)
        self.actors = [self._start() for _ in range(n)]
        self.infos = ray.get([a.info.remote() for a in self.actors])  # waits until every worker has loaded

    def _start(self):
        return self._cls.options(**self.actor_options).remote(*self._args)

    def pids(self) -> list[int]:
        """The worker processes' ids (on their nodes)."""
        return [i["pid"] for i in self.infos]

    def map(self, method: str, items: Sequence[Any], keys: Sequence[str], options: dict[str, Any],
            on_result: Callable[[int, int], None] | None = None) -> tuple[list[Any], list[int], list[dict[str, Any]]]:
        """Run ``method(item, options)`` on every item; returns (results in order, worker per item, retries).

        Items with equal keys go to one worker; the items of a worker that dies are re-submitted
        to the live workers (a fresh one is started when none is left). ``on_result(item, worker)``
        is called as each result arrives.
        """
        ray = self.ray
        from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError

        dead_errors = (RayActorError, ActorDiedError, ActorUnavailableError)
        alive = list(range(len(self.actors)))
        where = assign(keys, len(alive))
        pending = {getattr(self.actors[w], method).remote(item, options): (i, w) for i, (item, w) in enumerate(zip(items, where, strict=True))}
        results: list[Any] = [None] * len(items)
        retried: list[dict[str, Any]] = []
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            i, w = pending.pop(ready[0])
            try:
                results[i] = ray.get(ready[0])
            except dead_errors as e:
                if w in alive:
                    alive.remove(w)
                if not alive:  # every worker died: start a replacement
                    self.actors.append(self._start())
                    self.infos.append(ray.get(self.actors[-1].info.remote()))
                    alive.append(len(self.actors) - 1)
                target = alive[i % len(alive)]
                retried.append({"task": i, "worker": w, "retried_on": target,
                                "error": str(e).strip().splitlines()[0][:300]})
                pending[getattr(self.actors[target], method).remote(items[i], options)] = (i, target)
                continue
            where[i] = w
            if on_result is not None:
                on_result(i, w)
        return results, where, retried

    def evaluate(self, specs: Sequence[TaskSpec], *, on_result: Callable[[int, int], None] | None = None,
                 **options: Any) -> RayReport:
        """Evaluate ``specs`` as `evaluate` does locally, spread over the workers; ``options`` are
        `evaluate_async`'s (``n_particles``, ``seed``, ``attempts``, ``limits``, ``cache``, ...)."""
        outcomes, where, retried = self.map("evaluate", specs, [group_key(s) for s in specs], options, on_result)
        return RayReport(planner=self.infos[0]["planner"], outcomes=outcomes, workers=self.infos, placement=where, retried=retried)

    def solve(self, tasks: Sequence[str], *, on_result: Callable[[int, int], None] | None = None,
              **options: Any) -> list[SolveResult]:
        """`solve` every task with `solve`'s ``options`` (equal tasks share a worker); results in order."""
        return self.map("solve", tasks, list(tasks), options, on_result)[0]

    def close(self) -> None:
        """End the workers (the cluster stays up)."""
        for a in self.actors:
            self.ray.kill(a)


def solve_many(tasks: Sequence[str], *, address: str | None = None, workers: int | None = None,
               planner: Planner | str | None = None, follower: str | None = None, **options: Any) -> list[SolveResult]:
    """`solve` a batch of tasks on a Ray cluster; ``options`` are `solve`'s (n_particles, seed, ...)."""
    pool = RayPool(workers=workers, address=address, planner=planner, follower=follower)
    try:
        return pool.solve(tasks, **options)
    finally:
        pool.close()


def evaluate_ray(specs: Sequence[TaskSpec], *, address: str | None = None, workers: int | None = None,
                 planner: Planner | str | None = None, follower: str | None = None, **options: Any) -> RayReport:
    """`evaluate` on a Ray cluster; ``options`` are `evaluate_async`'s (n_particles, seed, ...)."""
    pool = RayPool(workers=workers, address=address, planner=planner, follower=follower)
    try:
        return pool.evaluate(specs, **options)
    finally:
        pool.close()
