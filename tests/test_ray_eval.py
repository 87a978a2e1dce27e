"""Task sets on Ray, compared against the local run of the same tasks and seeds.

`test_ray_matches_the_local_run_and_survives_a_dying_worker` starts a real local cluster with
the ``ray`` command (a head on 127.0.0.1 without CPUs, two worker nodes of one CPU each) and
kills one worker (SIGKILL) mid-run. Where this machine cannot start a Ray node (the raylet gives
its Python agents 15 s to start, which a shared 2-core CPU under load misses), it skips and says
so. `test_placement_and_retries_without_a_cluster` then covers the same logic with a stand-in
for Ray's actor API that runs the workers in this process (the test says so where it builds it).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from selfsteer.planners.evaluate import TaskSpec, evaluate

ray = pytest.importorskip("ray")

from selfsteer.planners.cache import ProgramCache  # noqa: E402
from selfsteer.planners.ray_eval import RayPool, assign, group_key  # noqa: E402
from selfsteer.planners.solve import solve  # noqa: E402

TASKS = [
    TaskSpec("Give me a phone number that matches the regex `[0-9]{3}-[0-9]{4}`."),
    TaskSpec("Write a sentence of exactly 4 words."),
    TaskSpec("Give me a code that matches the regex `[A-Z]{2}[0-9]{2}`."),
    TaskSpec("Write a sentence of exactly 6 words."),
]
OPTIONS = {"n_particles": 2, "attempts": 1, "seed": 3, "baseline_tokens": 8}
ENV = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled", "OMP_NUM_THREADS": "1"}


def test_equal_keys_share_a_worker_and_groups_balance():
    keys = ["a", "b", "a", "c", "a", "d", "b"]
    where = assign(keys, 2)
    assert where[0] == where[2] == where[4] and where[1] == where[6]
    assert sorted(where.count(w) for w in (0, 1)) == [3, 4]
    assert group_key(TaskSpec("x", checker={"program": "regex"})) == group_key(TaskSpec("y", checker={"program": "regex"}))


def start_node(args: list[str], log: Path, deadline: float) -> subprocess.Popen:
    """``ray start ARGS --block`` in the background, once it says the node is up."""
    ray_bin = str(Path(sys.executable).with_name("ray"))
    with log.open("w") as out:
        proc = subprocess.Popen([ray_bin, "start", *args, "--node-ip-address=127.0.0.1", "--block",
                                 "--disable-usage-stats"], env=ENV, stdout=out, stderr=subprocess.STDOUT)
    while "Ray runtime started" not in log.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.terminate()
            lines = [line for line in log.read_text().splitlines() if "Exception" in line or "Error" in line]
            raise NodeFailed(f"this machine could not start a Ray node: {lines[-1] if lines else 'timed out'}")
        time.sleep(0.5)
    return proc


class NodeFailed(RuntimeError):
    """``ray start`` failed here (the environment, not selfsteer)."""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Head on 127.0.0.1 without CPUs, two worker nodes of one CPU each; the driver joins."""
    logs = tmp_path_factory.mktemp("ray-logs")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    deadline, procs = time.monotonic() + 300, []
    try:
        procs.append(start_node(["--head", f"--port={port}", "--num-cpus=0", "--include-dashboard=false"],
                                logs / "head.log", deadline))
        for i in (1, 2):
            procs.append(start_node([f"--address=127.0.0.1:{port}", "--num-cpus=1"], logs / f"worker{i}.log", deadline))
        os.environ["RAY_AUTH_MODE"] = "disabled"  # the driver, like the nodes
        ray.init(address=f"127.0.0.1:{port}", _node_ip_address="127.0.0.1", logging_level="warning",
                 log_to_driver=False)
        assert sum(node["Alive"] for node in ray.nodes()) == 3
    except NodeFailed as e:
        for p in procs:
            p.terminate()
        pytest.skip(str(e))
    try:
        yield
    finally:
        ray.shutdown()
        for p in reversed(procs):
            p.terminate()  # `ray start --block` stops its node's processes on SIGTERM
        for p in procs:
            p.wait(120)


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    cache = ProgramCache(tmp_path_factory.mktemp("local-cache"))
    return evaluate(TASKS, planner="library", jobs=1, cache=cache, progress=False, **OPTIONS), cache


def cache_contents(cache: ProgramCache) -> dict[str, list]:
    out = {}
    for folder in sorted(p for p in cache.root.iterdir() if p.is_dir()):
        records = [json.loads(f.read_text()) for f in sorted(folder.glob("[0-9]*.json"))]
        out[folder.name] = [(r["plan"], r["error_kind"], r["passed"], r["summary"]["posterior"]) for r in records]
    return out


def same_outcomes(a, b) -> None:
    for x, y in zip(a.outcomes, b.outcomes, strict=True):
        assert (x.task, x.checker, x.passed, x.answer, x.baseline_passed, x.baseline_answer) == \
               (y.task, y.checker, y.passed, y.answer, y.baseline_passed, y.baseline_answer)
        assert x.weighted_pass == pytest.approx(y.weighted_pass)


@pytest.mark.slow
def test_ray_matches_the_local_run_and_survives_a_dying_worker(cluster, local, tmp_path):
    report, local_cache = local
    pool = RayPool(workers=2, planner="library")
    try:
        assert len({i["node"] for i in pool.infos}) == 2  # one worker on each worker node
        cache = ProgramCache(tmp_path / "ray-cache")
        spread = pool.evaluate(TASKS, cache=cache, **OPTIONS)
        same_outcomes(report, spread)
        assert cache_contents(cache) == cache_contents(local_cache)
        assert spread.retried == [] and sorted(i["tasks"] for i in ray.get([a.info.remote() for a in pool.actors])) == [2, 2]
        for system, totals in report.totals().items():
            for metric in ("pass_rate", "weighted_pass@1"):
                assert spread.totals()[system][metric] == pytest.approx(totals[metric])

        killed: list[int] = []

        def kill_the_other(task: int, worker: int) -> None:
            if not killed:
                killed.append(1 - worker)
                os.kill(pool.infos[1 - worker]["pid"], signal.SIGKILL)

        survived = pool.evaluate(TASKS, on_result=kill_the_other, **OPTIONS)
        same_outcomes(report, survived)
        assert survived.retried and {r["worker"] for r in survived.retried} == set(killed)
        assert all(survived.placement[r["task"]] == 1 - killed[0] for r in survived.retried)
        assert "1 died" in survived.table() and json.loads(survived.to_json())["ray"]["retried"]

        tasks = [TASKS[0].task, TASKS[1].task]
        answers = pool.solve(tasks, n_particles=2, attempts=1, seed=3, cache=False)
        for task, got in zip(tasks, answers, strict=True):
            want = solve(task, planner="library", n_particles=2, attempts=1, seed=3, cache=False)
            assert (got.answer, got.check_passed, got.plan.program_name) == (want.answer, want.check_passed,
                                                                             want.plan.program_name)
    finally:
        pool.close()


class StandInRef:
    """An object ref whose call runs when it is first waited on (calls run in submission order)."""

    def __init__(self, call):
        self.call, self.done, self.value, self.error = call, False, None, None

    def resolve(self):
        if not self.done:
            try:
                self.value = self.call()
            except Exception as e:  # noqa: BLE001 - kept for ray.get, as Ray does
                self.error = e
            self.done = True
        if self.error is not None:
            raise self.error
        return self.value


class StandInActor:
    """A worker in this process; once killed, its calls fail with Ray's ActorDiedError."""

    def __init__(self, cls, args):
        self.obj, self.alive = cls(*args), True

    def __getattr__(self, name):
        method = getattr(self.obj, name)
        actor = self

        class Method:
            def remote(self, *args):
                def call():
                    if not actor.alive:
                        raise ray.exceptions.ActorDiedError()
                    return method(*args)

                return StandInRef(call)

        return Method()


class StandInClass:
    def __init__(self, cls):
        self.cls = cls

    def options(self, **_):
        return self

    def remote(self, *args):
        return StandInActor(self.cls, args)


@pytest.fixture
def stand_in(monkeypatch):
    """Ray's actor API in this process. A stand-in, because this machine cannot start a Ray node
    (see the module docstring); the placement, retry and report code under test is the real one."""
    monkeypatch.setattr(ray, "is_initialized", lambda: True)
    monkeypatch.setattr(ray, "remote", StandInClass)
    monkeypatch.setattr(ray, "get", lambda ref: [r.resolve() for r in ref] if isinstance(ref, list) else ref.resolve())
    monkeypatch.setattr(ray, "wait", lambda refs, num_returns=1: (refs[:1], refs[1:]))
    monkeypatch.setattr(ray, "kill", lambda actor: setattr(actor, "alive", False))
    monkeypatch.setattr(ray, "get_runtime_context", lambda: type("Context", (), {"get_node_id": lambda self: "here"})())


@pytest.mark.slow
def test_placement_and_retries_without_a_cluster(stand_in, local):
    report, _ = local
    pool = RayPool(workers=2, planner="library")
    spread = pool.evaluate(TASKS, **OPTIONS)
    same_outcomes(report, spread)
    assert spread.placement == assign([group_key(s) for s in TASKS], 2) and spread.retried == []

    killed: list[int] = []

    def kill_the_other(task: int, worker: int) -> None:
        if not killed:
            killed.append(1 - worker)
            ray.kill(pool.actors[1 - worker])

    survived = pool.evaluate(TASKS, on_result=kill_the_other, **OPTIONS)
    same_outcomes(report, survived)
    assert [r["worker"] for r in survived.retried] == killed * 2  # both of its tasks ran on the other worker
    assert set(survived.placement) == {1 - killed[0]}
    assert "1 died, 2 task(s) retried" in survived.table()
    assert [r["task"] for r in json.loads(survived.to_json())["ray"]["retried"]] == [r["task"] for r in survived.retried]

    ray.kill(pool.actors[1 - killed[0]])  # every worker dead: a replacement is started
    again = pool.solve([TASKS[0].task], n_particles=2, attempts=1, seed=3, cache=False)
    assert len(pool.actors) == 3 and again[0].answer == report.outcomes[0].answer
