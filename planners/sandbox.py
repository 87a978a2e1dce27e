"""Run an untrusted, planner-written program in a separate, limited process.

``await run_sandboxed(program, task, follower=..., n_particles=..., limits=Limits())`` starts
``python -I -m selfsteer.planners.sandbox_child``, which loads the follower (from the local
cache, a second or two when warm), executes the program with restricted builtins and runs SMC on
it. Whatever the program does, the caller gets back a `RunSummary` or a `SandboxError` whose
message is feedback for the planner; the caller's process is never at risk.

What isolation is provided:

- a separate process in its own session, killed (with its whole process group) when it runs
  past ``limits.wall_s`` after the follower has loaded, or ``limits.load_s`` while loading;
- ``RLIMIT_AS`` (``limits.memory_mb``: a memory bomb gets MemoryError or dies), ``RLIMIT_CPU``,
  no core dumps, and ``RLIMIT_FSIZE=0`` (no file can grow) once the follower is loaded;
- a step cap (``limits.max_steps``) and an SMC time limit inside the child;
- restricted builtins and an import guard (only the validator's allow-list);
- an audit hook that blocks new processes, sockets, ctypes, rlimit changes, file-system changes,
  directory listings and every file open outside Python's own and the model cache's directories;
- no network: the child runs under ``unshare --net`` when that works here (as root, or with
  unprivileged user namespaces), else this layer is missing and `isolation_measures` says so;
- as root, the child drops to uid/gid ``nobody`` before program code runs;
- a temporary working directory, removed afterwards, and an environment without API keys.

What it does not provide: a kernel-enforced file-system jail (no chroot, seccomp or Landlock),
so reads of world-readable files are blocked only by the audit hook, which Python documents as
no security boundary on its own. The static validator (`selfsteer.planners.validate`) stands in
front of it: programs cannot name ``open``, ``os``, ``getattr`` or dunder attributes at all.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from .outcome import RunSummary
from .validate import ValidatedProgram

SECRET_ENV = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL", re.IGNORECASE)
STDERR_KEEP_BYTES = 8192
REPORT_LINE_LIMIT = 8 << 20


@dataclass(frozen=True)
class Limits:
    """Resource limits of one sandboxed run."""

    wall_s: float = 120.0  # wall-clock seconds for the program's run (after the follower loads)
    load_s: float = 180.0  # wall-clock seconds to start Python and load the follower
    memory_mb: int = 6144  # address-space limit of the child
    max_steps: int = 1000  # SMC step cap
    cpu_s: int | None = None  # CPU seconds (default: load_s + 2 * wall_s)

    def cpu_seconds(self) -> int:
        return int(self.cpu_s if self.cpu_s is not None else self.load_s + 2 * self.wall_s)


class SandboxError(RuntimeError):
    """The program failed in the sandbox. ``kind``: program, memory, recursion, violation, timeout,
    crash, load or protocol; the message is worded as feedback for the planner."""

    def __init__(self, kind: str, message: str, *, stderr_tail: str = ""):
        super().__init__(message)
        self.kind = kind
        self.stderr_tail = stderr_tail


@dataclass
class SandboxRun:
    """A finished sandboxed run: its summary and which isolation measures took effect."""

    summary: RunSummary
    isolation: list[str] = field(default_factory=list)


@cache
def network_isolation() -> list[str]:
    """The command prefix that gives the child no network, or ``[]`` when unshare cannot here."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return []
    for prefix in ([unshare, "--net"], [unshare, "--net", "--map-root-user"]):
        try:
            ok = subprocess.run([*prefix, "true"], capture_output=True, timeout=10).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            ok = False
        if ok:
            return prefix
    return []


def isolation_measures() -> list[str]:
    """The layers a sandboxed run gets on this machine, before the child adds its own."""
    return ["process", "wall-clock", "step-cap"] + (["no-network"] if network_isolation() else [])


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not SECRET_ENV.search(k)}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS="1", PYTHONHASHSEED="0")
    return env


async def _drain(stream: asyncio.StreamReader, keep: bytearray) -> None:
    while chunk := await stream.read(65536):
        keep.extend(chunk)
        del keep[:-STDERR_KEEP_BYTES]


def _kill(proc: asyncio.subprocess.Process) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _death_message(returncode: int, limits: Limits) -> tuple[str, str]:
    if returncode < 0:
        sig = signal.Signals(-returncode)
        if sig == signal.SIGXCPU:
            return "timeout", f"the program used more than {limits.cpu_seconds()} CPU seconds; make every loop bounded"
        if sig == signal.SIGKILL:
            return "memory", f"the sandbox process was killed (most likely out of memory; limit {limits.memory_mb} MiB)"
        if sig == signal.SIGSEGV:
            return "crash", "the sandbox process crashed (segmentation fault, e.g. from runaway recursion); use loops, not recursion"
        return "crash", f"the sandbox process died from signal {sig.name}"
    return "crash", f"the sandbox process exited with status {returncode} without reporting a result"


async def _read_report(proc, timeout: float, what: str, limits: Limits, *, grace: float = 0.0) -> dict:
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), timeout + grace)
    except TimeoutError:
        _kill(proc)
        raise SandboxError("timeout", f"{what} ran past the wall-clock limit of {timeout:g} s"
                           + (" (an infinite loop? make every loop bounded and every step finish)" if what == "the program" else "")) from None
    if not line:
        await proc.wait()
        raise SandboxError(*_death_message(proc.returncode, limits))
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        raise SandboxError("protocol", f"the sandbox sent an unreadable report: {line[:200]!r}") from None


async def run_sandboxed(
    program: ValidatedProgram,
    task: str,
    *,
    follower: str | None = None,
    n_particles: int = 8,
    seed: int | None = None,
    ess_threshold: float = 0.5,
    limits: Limits = Limits(),
    scaling: dict | None = None,
) -> SandboxRun:
    """Run a validated program on ``task`` in the sandbox (see the module docstring).

    ``scaling``: test-time scaling options as JSON (`ScalingOptions.to_json`).
    """
    workdir = tempfile.mkdtemp(prefix="selfsteer-sandbox-")
    os.chmod(workdir, 0o755)
    job = {
        "source": program.source, "class_name": program.class_name, "task": task, "follower": follower,
        "n_particles": n_particles, "seed": seed, "ess_threshold": ess_threshold, "max_steps": limits.max_steps,
        "time_limit": limits.wall_s, "memory_mb": limits.memory_mb, "cpu_s": limits.cpu_seconds(), "workdir": workdir,
        "scaling": scaling or {},
    }
    cmd = [*network_isolation(), sys.executable, "-I", "-m", "selfsteer.planners.sandbox_child"]
    stderr = bytearray()
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        start_new_session=True, cwd=workdir, env=child_env(), limit=REPORT_LINE_LIMIT,
    )
    drain = asyncio.create_task(_drain(proc.stderr, stderr))
    try:
        proc.stdin.write(json.dumps(job).encode())
        await proc.stdin.drain()
        proc.stdin.close()
        first = await _read_report(proc, limits.load_s, "loading the follower", limits)
        report = first if "ready" not in first else await _read_report(proc, limits.wall_s, "the program", limits, grace=5.0)
    except SandboxError as e:
        e.stderr_tail = stderr.decode(errors="replace")
        raise
    finally:
        _kill(proc)
        await proc.wait()
        await drain
        shutil.rmtree(workdir, ignore_errors=True)
    if "error" in report:
        err = report["error"]
        raise SandboxError(err["kind"], err["message"], stderr_tail=stderr.decode(errors="replace"))
    isolation = isolation_measures() + first.get("ready", {}).get("isolation", [])
    return SandboxRun(RunSummary.from_dict(report["summary"]), isolation)


def run_sandboxed_sync(program: ValidatedProgram, task: str, **kwargs: Any) -> SandboxRun:
    """`run_sandboxed` from synchronous code."""
    from selfsteer.smc.inference import run_sync

    return run_sync(run_sandboxed(program, task, **kwargs))
