"""The sandbox end to end with the real child: a generated program that loops forever, allocates
50 GB, recurses without end, or (past the validator, even in its module code) reaches for files,
the network, processes or the caller is stopped or contained with a precise outcome, and the caller
survives. Well-behaved programs (constraints built in ``__init__`` included) work. The result
channel is checked against children that send forged, oversized or non-finite reports.
OS-level layers alone are attacked in test_planners_jail.py."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest
from test_planners_validate import program

from selfsteer.planners import jail
from selfsteer.planners.outcome import summarize
from selfsteer.planners.pool import SandboxPool
from selfsteer.planners.sandbox import (
    Limits,
    SandboxError,
    SandboxUnavailable,
    isolation_measures,
    run_sandboxed,
    run_sandboxed_sync,
)
from selfsteer.planners.validate import ValidatedProgram, validate_program
from selfsteer.smc import smc

pytestmark = pytest.mark.skipif(bool(jail.jail_layers().missing), reason=f"jail layers missing: {jail.jail_layers().missing}")
TASK = "Write one short sentence about a dog."
GOOD = '''
from selfsteer.smc import TextModel


class Short(TextModel):
    """Strategy: a few tokens under the task's proposal. Step granularity: one token.
    End conditions: EOS or 6 tokens."""

    def __init__(self, lm, task):
        super().__init__(lm, "Write a sentence.", task, max_tokens=10)

    async def step(self):
        tok = await self.next_token()
        if tok.is_eos or self.n_tokens >= 6:
            self.finish(self.text)

    def check(self, output):
        return len(output) > 0
'''
SECRET = "selfsteer-sentinel-91b3"
FULL_LAYERS = {"process", "wall-clock", "step-cap", "validator", "restricted-builtins", "user-namespace",
               "mount-namespace", "pid-namespace", "no-network", "no-capabilities", "seccomp", "rlimits"}
EXACT = {"follower": "exact", "limits": Limits(wall_s=20, load_s=120)}


def unvalidated(source: str) -> ValidatedProgram:
    """Skip the static validator on purpose, to test the runtime layers behind it."""
    return ValidatedProgram(source, "P")


def exact_program(step_body: str, **kwargs) -> str:
    """A program for the exact LM (prior and task "a")."""
    return program(step_body, **kwargs).replace('"Write."', '"a"')


def run_exact(source: ValidatedProgram):
    try:
        return run_sandboxed_sync(source, "a", **EXACT)
    except SandboxError as e:
        return e


ATTACKS = {
    "infinite loop": (validate_program(program("n = 0\nwhile True:\n    n += 1")), "timeout", "wall-clock limit of 8 s"),
    "50 GB": (validate_program(program('blob = "x" * (50 * 10**9)\nself.finish(blob)')), "memory", "ran out of memory"),
    "recursion": (validate_program(program("self.finish(str(dive(0)))", top="\ndef dive(n):\n    return dive(n + 1) + 1\n")),
                  "recursion", "recursed too deeply (in dive(), line"),
}


@pytest.mark.slow
def test_attacks_are_stopped_and_the_caller_survives(lm):
    async def attempt(prog: ValidatedProgram, wall_s: float):
        try:
            return await run_sandboxed(prog, TASK, n_particles=2, seed=0, limits=Limits(wall_s=wall_s, memory_mb=6144))
        except SandboxError as e:
            return e

    async def all_runs():  # the good program gets time to finish even on a busy machine
        return await asyncio.gather(*(attempt(p, 8) for p, _, _ in ATTACKS.values()), attempt(validate_program(GOOD), 120))

    started = time.monotonic()
    *outcomes, good = asyncio.run(all_runs())
    for (name, (_, kind, fragment)), outcome in zip(ATTACKS.items(), outcomes, strict=True):
        assert isinstance(outcome, SandboxError), f"{name}: {outcome}"
        assert outcome.kind == kind and fragment in str(outcome), f"{name}: {outcome.kind}: {outcome}"
    assert time.monotonic() - started < 360
    # the well-behaved program, run alongside, matches an in-process run with the same seed (the
    # child runs torch on one thread, so weights agree to float rounding, not bit for bit)
    in_process = summarize(smc(_load(GOOD)(lm, TASK), 2, seed=0))
    assert [o for o, _ in good.summary.posterior] == [o for o, _ in in_process.posterior]
    assert [p for _, p in good.summary.posterior] == pytest.approx([p for _, p in in_process.posterior], rel=1e-3, abs=1e-6)
    assert set(good.isolation) == FULL_LAYERS == set(isolation_measures()) | {"rlimits"}


def _load(source: str):
    namespace: dict = {}
    exec(compile(source, "good", "exec"), namespace)  # trusted test code
    return namespace["Short"]


# Past the validator and the restricted builtins, in module code (runs before anything else of the
# program): the classic walk from a tuple to os's globals and the real builtins, then every attack.
ESCAPE_PRELUDE = '''
WRAP = [c for c in ().__class__.__base__.__subclasses__() if c.__name__ == "_wrap_close"][0]
B = WRAP.__init__.__globals__["__builtins__"]
IMP = B["__import__"]
OUT = {}


def attempt(name, fn):
    try:
        OUT[name] = ["ok", repr(fn())[:80]]
    except B["BaseException"] as e:
        OUT[name] = [e.__class__.__name__, B["getattr"](e, "errno", None)]

'''
ESCAPE = ESCAPE_PRELUDE + '''
os = IMP("os")
socket = IMP("socket")
ctypes = IMP("ctypes")
libc = ctypes.CDLL(None, use_errno=True)
attempt("read sentinel", lambda: B["open"](SENTINEL).read())
attempt("write host", lambda: B["open"](HOST_FILE, "w").write("x"))
attempt("write packages", lambda: B["open"](PACKAGES + "/pwned", "w"))
attempt("fill scratch", lambda: B["open"]("/tmp/big", "wb").write(b"x" * (65 << 20)))
attempt("connect", lambda: socket.create_connection(("127.0.0.1", PORT), timeout=2))
attempt("spawn", lambda: IMP("subprocess").Popen(["/bin/sleep", "60", MARKER], start_new_session=True))
attempt("kill parent", lambda: os.kill(os.getppid(), 15))
attempt("setns", lambda: [libc.setns(os.open("/proc/self/ns/net", 0), 0), ctypes.get_errno()])
attempt("thread bomb", lambda: [IMP("threading").Thread(target=IMP("time").sleep, args=(0.5,)).start() for _ in range(2000)])
IMP("time").sleep(1)
OUT["pids"] = sorted(p for p in os.listdir("/proc") if p.isdigit())
OUT["environ"] = [B["open"](f"/proc/{p}/environ", "rb").read().decode() for p in OUT["pids"]]
'''


def _listener():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    accepted, stop = [], threading.Event()

    def serve():
        while not stop.is_set():
            try:
                accepted.append(server.accept())
            except OSError:
                continue

    threading.Thread(target=serve, daemon=True).start()
    return server, accepted, stop


def _processes_with(marker: str) -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if marker.encode() in f.read():
                    found.append(pid)
        except OSError:
            continue
    return found


def test_module_code_attacks_are_contained(tmp_path, monkeypatch):
    monkeypatch.setenv("SELFSTEER_TEST_API_KEY", SECRET)
    sentinel, host_file, marker = tmp_path / "secret.txt", tmp_path / "pwned.txt", f"selfsteer-marker-{os.getpid()}"
    sentinel.write_text(SECRET)
    server, accepted, stop = _listener()
    constants = (f"SENTINEL = {str(sentinel)!r}\nHOST_FILE = {str(host_file)!r}\nPACKAGES = {sys.prefix!r}\n"
                 f"PORT = {server.getsockname()[1]}\nMARKER = {marker!r}\n")
    source = exact_program('self.finish(IMP("json").dumps(OUT))', top=constants + ESCAPE)
    try:
        run = run_sandboxed_sync(unvalidated(source), "a", **EXACT)
    finally:
        stop.set()
        server.close()
    out = json.loads(run.summary.answer)
    assert out["read sentinel"] == ["FileNotFoundError", 2]  # the host's /tmp is not in the jail
    assert out["write host"] == ["FileNotFoundError", 2] and not host_file.exists()
    assert out["write packages"] == ["OSError", 30]  # read-only file system
    assert out["fill scratch"][0] == "OSError" and out["fill scratch"][1] in (27, 28)  # EFBIG / ENOSPC
    assert out["connect"] == ["PermissionError", 1] and accepted == []
    assert out["spawn"] == ["PermissionError", 1] and _processes_with(marker) == []
    assert out["kill parent"] == ["PermissionError", 1]
    assert out["setns"] == ["ok", "[-1, 1]"]
    # "can't start new thread": bounded by the address-space limit (8 MiB stacks); RLIMIT_NPROC is set
    # too but Linux does not apply it to a caller running as root (see planners/sandbox.py)
    assert out["thread bomb"] == ["RuntimeError", None]
    assert out["pids"] == ["1", "2"]
    assert SECRET not in run.summary.answer
    assert set(run.isolation) == FULL_LAYERS


@pytest.mark.parametrize("name,source,kind,fragment", [
    ("import os", exact_program('__import__("os").system("true")'), "program", "importing 'os' is not allowed"),
    ("write through a subclasses walk", exact_program(
        'todo = [().__class__.__base__]\n'
        'while todo:\n'
        '    c = todo.pop()\n'
        '    if c.__name__ == "FileIO":\n'
        f'        c("{sys.prefix}/pwned", "w")\n'
        '    try:\n'
        '        todo.extend(c.__subclasses__())\n'
        '    except TypeError:\n'
        '        pass\n'
        'self.finish("x")'), "violation", "Read-only file system"),
])
def test_runtime_layers_stop_what_gets_past_validation(name, source, kind, fragment):
    started = time.monotonic()
    outcome = run_exact(unvalidated(source))
    assert isinstance(outcome, SandboxError) and outcome.kind == kind and fragment in str(outcome), str(outcome)
    assert time.monotonic() - started < 120 + 20 + 10
    assert not os.path.exists(f"{sys.prefix}/pwned")


def test_a_hang_in_module_code_is_a_program_timeout():
    started = time.monotonic()
    with pytest.raises(SandboxError) as info:
        run_sandboxed_sync(unvalidated(exact_program("pass", top="\nwhile True:\n    pass\n")), "a", follower="exact",
                           limits=Limits(wall_s=4, load_s=120))
    assert info.value.kind == "timeout" and "the program ran past the wall-clock limit of 4 s (an infinite loop?" in str(info.value)
    assert time.monotonic() - started < 120 + 4 + 10


def test_non_finite_weights_are_a_clear_error():
    outcome = run_exact(validate_program(exact_program('self.score(float("inf"))\nself.finish("a")')))
    assert isinstance(outcome, SandboxError) and outcome.kind == "program"
    assert "a log-weight increment is inf" in str(outcome) and "line 11: `self.score(float(\"inf\"))`" in str(outcome)


def test_constraints_built_in_init_work_in_the_sandbox():
    template = '''
from selfsteer.smc import TextModel, Regex, Grammar, JsonSchema


class P(TextModel):
    """Strategy: one constraint, built in __init__."""

    def __init__(self, lm, task):
        super().__init__(lm, "a", task, max_tokens=4)
        self.spec = SPEC

    async def step(self):
        span = await self.constrain_step(self.spec)
        if span.ended:
            self.finish(span.text)
        elif span.done:
            await self.end()

    def check(self, output):
        return True
'''
    specs = {"regex": 'Regex("(ab)+")', "grammar": 'Grammar(\'start: "a" start | "b"\')',
             "json": 'JsonSchema({"type": "integer"})'}

    async def all_runs():
        return await asyncio.gather(*(run_sandboxed(validate_program(template.replace("SPEC", spec)), "a", **EXACT)
                                      for spec in specs.values()), return_exceptions=True)

    regex, grammar, json_schema = asyncio.run(all_runs())
    assert not isinstance(regex, BaseException) and not isinstance(grammar, BaseException), (regex, grammar)
    assert regex.summary.posterior and all(o in ("ab", "abab") for o, _ in regex.summary.posterior)
    assert grammar.summary.posterior and all(set(o) <= {"a", "b"} and o.endswith("b") for o, _ in grammar.summary.posterior)
    assert not isinstance(json_schema, BaseException), json_schema  # built and compiled; the exact LM writes no digits


def test_bad_follower_is_a_load_error():
    with pytest.raises(SandboxError, match="could not be loaded") as info:
        run_sandboxed_sync(validate_program(GOOD), TASK, follower="/no/such/model.gguf", limits=Limits(wall_s=5))
    assert info.value.kind == "load"


def test_program_errors_point_at_the_program_line():
    with pytest.raises(SandboxError, match=r"ZeroDivisionError: division by zero \(in step\(\), line \d+: `x = 1 / 0`\)"):
        run_sandboxed_sync(validate_program(exact_program("x = 1 / 0")), "a", **EXACT)


@pytest.fixture
def no_bwrap(monkeypatch):
    """A host without bubblewrap (PATH without it), probed afresh."""
    monkeypatch.setenv("PATH", "/nonexistent")
    jail.jail_layers.cache_clear()
    yield
    jail.jail_layers.cache_clear()


def test_missing_layers_refuse_untrusted_code_unless_opted_in(no_bwrap):
    with pytest.raises(SandboxUnavailable, match="lacks user-namespace.*bubblewrap is not installed.*allow_weak_sandbox=True"):
        run_sandboxed_sync(validate_program(exact_program('self.finish("a")')), "a", **EXACT)
    run = run_sandboxed_sync(validate_program(exact_program('self.finish("a")')), "a", allow_weak_sandbox=True, **EXACT)
    assert run.summary.answer == "a"
    assert set(run.isolation) == {"process", "wall-clock", "step-cap", "validator", "restricted-builtins", "rlimits"}


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def test_the_jail_dies_with_a_killed_caller():
    source = exact_program("while True:\n    pass")
    caller = (
        "import sys\nsys.path.insert(0, 'tests')\n"
        "from selfsteer.planners.sandbox import Limits, run_sandboxed_sync\n"
        "from selfsteer.planners.validate import validate_program\n"
        f"run_sandboxed_sync(validate_program({source!r}), 'a', follower='exact', limits=Limits(wall_s=300))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", caller])
    try:
        deadline = time.monotonic() + 120
        while len(jailed := _descendants(proc.pid)) < 3 and time.monotonic() < deadline:  # bwrap, its init, python
            time.sleep(0.5)
        assert len(jailed) >= 3
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 10
    while (alive := [p for p in jailed if os.path.exists(f"/proc/{p}")]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert alive == []


def test_a_warm_pool_gives_every_program_its_own_fresh_jail():
    writes = exact_program('self.finish("wrote")', top=ESCAPE_PRELUDE + '\nB["open"]("/tmp/mark", "w").write("x")\n')
    reads = exact_program('self.finish(str(IMP("os").path.exists("/tmp/mark")) + " " + str(sorted(IMP("os").listdir("/proc"))))',
                          top=ESCAPE_PRELUDE)

    async def go():
        async with SandboxPool(size=1, follower="exact", limits=Limits(wall_s=30, load_s=120)) as pool:
            first = await pool.run(unvalidated(writes), "a", seed=0)
            second = await pool.run(unvalidated(reads), "a", seed=0)
            try:  # a library job: found, its params validated, built; the exact LM cannot tokenise its prompt
                await pool.run_library("regex", {"pattern": "(ab)+"}, "a", seed=0, n_particles=4)
            except SandboxError as e:
                library = e
            return first, second, library

    first, second, library = asyncio.run(go())
    assert first.summary.answer == "wrote" and second.summary.answer.startswith("False ['1', '2'")  # nothing left from the first
    assert set(first.isolation) == set(second.isolation) == FULL_LAYERS
    assert library.kind == "program" and "ExactLM cannot tokenise 'Write the answer.'" in str(library)
