"""Run an untrusted, planner-written program in a separate process jailed by the OS.

``await run_sandboxed(program, task, follower=..., n_particles=..., limits=Limits())`` starts
``python -I -m selfsteer.planners.sandbox_child`` inside the jail of `selfsteer.planners.jail`,
which is in force before the child runs any code: it loads the follower, executes the program with
restricted builtins and runs SMC on it. Whatever the program does, the caller gets back a
`SandboxRun` or a `SandboxError` whose message is short feedback for the planner. The two halves,
`start_worker` (start and boot a child) and `run_job` (run one program on it, then kill it), are
what `selfsteer.planners.pool.SandboxPool` uses to keep workers booted ahead.

What is protected (Linux with bubblewrap and libseccomp; see `jail_layers`):

- the caller's files: the child sees only read-only system libraries, Python, the packages and
  the model files, a fresh ``/proc`` of its own processes and a 64 MiB tmpfs scratch directory;
- the network: an empty network namespace, no Unix sockets, ``socket()`` refused;
- the caller's processes and environment: a PID namespace, uid ``nobody`` in a user namespace,
  no capabilities, a seccomp filter (no ``ptrace``, ``setns``, ``unshare``, ``mount``, signals to
  other processes or new processes), an environment of a few fixed variables (no API keys);
- the caller's liveness: limits on address space (``limits.memory_mb``), CPU time, file size,
  open files and threads (set before program code runs); a wall clock for loading
  (``limits.load_s``) and one for the program from its module code on (``limits.wall_s``); every
  descendant dies with the run (the PID namespace dies with its first process); every pipe read
  has a deadline; the report is size- and schema-checked (`selfsteer.planners.report`).

What is not protected: CPU and memory bandwidth shared with the caller (a run can slow the machine
for up to its limits), kernel bugs reachable through the allowed system calls, and the read-only
files listed above (a program can read the installed packages and the model). When the caller
runs as root, the jail's user is root outside its namespace and Linux does not apply
``RLIMIT_NPROC`` to it: threads are then bounded by the address-space limit (8 MiB stacks), and
new processes by seccomp alone. Where a layer is missing (no bubblewrap, no user namespaces, no
libseccomp, not Linux) `run_sandboxed` refuses to run unless ``allow_weak_sandbox=True``; then only
the process boundary, rlimits, the static validator and restricted builtins stand, and
`SandboxRun.isolation` lists exactly those.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from selfsteer.smc.lm.loading import ModelNotFound, cache_dir

from .jail import LAYERS, SCRATCH, SCRATCH_BYTES, jail_command, jail_layers, seccomp_file
from .outcome import RunSummary
from .report import MAX_LINE_BYTES, ReportError, checked_error, checked_summary, clip, parse_line
from .validate import ValidatedProgram

STDERR_KEEP_BYTES = 8192
PIPE_GRACE_S = 5.0
CHILD_PACKAGES = ("smc", "planners", "programs")  # the selfsteer subpackages the child imports


@dataclass(frozen=True)
class Limits:
    """Resource limits of one sandboxed run."""

    wall_s: float = 120.0  # wall-clock seconds for the program, from its module code to its result
    load_s: float = 180.0  # wall-clock seconds to start Python and load the follower
    memory_mb: int = 6144  # address-space limit of the child
    max_steps: int = 1000  # SMC step cap
    cpu_s: int | None = None  # CPU seconds (default: load_s + 2 * wall_s)
    threads: int = 64  # processes and threads of the sandbox's user
    open_files: int = 256  # open file descriptors once the follower is loaded

    def cpu_seconds(self) -> int:
        return int(self.cpu_s if self.cpu_s is not None else self.load_s + 2 * self.wall_s)


class SandboxError(RuntimeError):
    """The program failed in the sandbox. ``kind``: program, memory, recursion, violation, timeout,
    crash, load or protocol; the message (clipped) is worded as feedback for the planner."""

    def __init__(self, kind: str, message: str, *, stderr_tail: str = ""):
        super().__init__(clip(message))
        self.kind = kind
        self.stderr_tail = stderr_tail


class SandboxUnavailable(RuntimeError):
    """This host cannot provide every isolation layer and the caller did not opt in to less."""


@dataclass
class SandboxRun:
    """A finished sandboxed run: its summary and which isolation layers were in force."""

    summary: RunSummary
    isolation: list[str] = field(default_factory=list)


def isolation_measures(allow_weak_sandbox: bool = False) -> list[str]:
    """The layers a sandboxed run gets on this machine; raises `SandboxUnavailable` when one is
    missing, unless ``allow_weak_sandbox``."""
    layers = jail_layers()
    if layers.missing and not allow_weak_sandbox:
        why = "; ".join(f"{name}: {reason}" for name, reason in layers.missing.items())
        raise SandboxUnavailable(
            f"refusing to run planner-written code: the sandbox lacks {', '.join(layers.missing)} ({why}). "
            "Fix the host, or opt in to a weaker sandbox with allow_weak_sandbox=True (CLI: --allow-weak-sandbox)")
    base = ["process", "wall-clock", "step-cap", "validator", "restricted-builtins"]
    return base + [layer for layer in layers.present if layer != "rlimits"]


def child_env() -> dict[str, str]:
    """The child's whole environment: fixed values only, nothing inherited (no API keys)."""
    return {"PATH": "/usr/bin:/bin", "HOME": SCRATCH, "LANG": "C.UTF-8", "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0",
            "SELFSTEER_CACHE": str(cache_dir()), "TMPDIR": SCRATCH}


def follower_files(follower: str | None) -> list[str]:
    """Host paths the follower loads from; a GGUF file is converted here first (trusted code),
    since the jail's model cache is read-only."""
    from selfsteer.smc.lm.loading import resolve

    if follower == "exact":
        return []
    where, _ = resolve(follower)
    if isinstance(where, Path) or os.path.exists(str(where)):
        return [str(Path(where).resolve())]
    return [os.environ.get("HF_HOME", str(Path.home() / ".cache" / "huggingface"))]  # a hub id: the local cache


@cache
def child_sys_path() -> tuple[str, ...]:
    """The directories ``python -I`` searches for modules here (not the caller's own sys.path,
    which may hold its working directory or ``$PYTHONPATH``)."""
    code = "import json, sys; print(json.dumps(sys.path))"
    run = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, env=child_env(),
                         cwd="/", timeout=60, check=True)
    return tuple(p for p in json.loads(run.stdout) if os.path.isabs(p) and os.path.isdir(p))


def readable_paths(follower: str | None) -> list[str]:
    """Everything mounted read-only in the jail besides the system libraries."""
    paths = {sys.base_prefix, sys.prefix, sys.exec_prefix, str(Path(sys.executable).resolve().parent)}
    paths |= set(child_sys_path())
    for name in CHILD_PACKAGES:
        paths |= set(importlib.import_module(f"selfsteer.{name}").__path__)
    return sorted(paths | set(follower_files(follower)))


def _kill(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # bwrap and its PID namespace (which dies with it)


def _death_message(returncode: int, limits: Limits) -> tuple[str, str]:
    if returncode < 0 or returncode > 128:
        sig = signal.Signals(-returncode if returncode < 0 else returncode - 128)
        if sig == signal.SIGXCPU:
            return "timeout", f"the program used more than {limits.cpu_seconds()} CPU seconds; make every loop bounded"
        if sig == signal.SIGKILL:
            return "memory", f"the sandbox process was killed (most likely out of memory; limit {limits.memory_mb} MiB)"
        if sig == signal.SIGSEGV:
            return "crash", "the sandbox process crashed (segmentation fault, e.g. from runaway recursion); use loops, not recursion"
        if sig == signal.SIGSYS:
            return "violation", "the sandbox killed the program for a forbidden system call"
        return "crash", f"the sandbox process died from signal {sig.name}"
    return "crash", f"the sandbox process exited with status {returncode} without reporting a result"


async def _read_report(proc, timeout: float, what: str, limits: Limits, *, grace: float = 0.0) -> tuple[str, Any]:
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), timeout + grace)
    except TimeoutError:
        _kill(proc)
        raise SandboxError("timeout", f"{what} ran past the wall-clock limit of {timeout:g} s"
                           + (" (an infinite loop? make every loop bounded and every step finish)" if what == "the program" else "")) from None
    except (ValueError, asyncio.LimitOverrunError):
        _kill(proc)
        raise SandboxError("protocol", f"the program's result was larger than {MAX_LINE_BYTES} bytes; return short outputs") from None
    if not line:
        _kill(proc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), PIPE_GRACE_S)
        raise SandboxError(*_death_message(proc.returncode or 0, limits))
    try:
        return parse_line(line)
    except ReportError as e:
        raise SandboxError("protocol", f"the sandbox sent an invalid report: {e}") from None


async def _drain(stream: asyncio.StreamReader, keep: bytearray) -> None:
    while chunk := await stream.read(65536):
        keep.extend(chunk)
        del keep[:-STDERR_KEEP_BYTES]


@dataclass
class Worker:
    """A started sandbox child, booted with its limits and follower, waiting for one job."""

    proc: asyncio.subprocess.Process
    limits: Limits
    isolation: list[str]
    stderr: bytearray = field(default_factory=bytearray)
    drain: asyncio.Task | None = None

    async def close(self) -> None:
        """Kill the jail and release its pipes (never waits on them without a deadline)."""
        _kill(self.proc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.proc.wait(), PIPE_GRACE_S)
        if self.drain is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self.drain, PIPE_GRACE_S)
        self.proc._transport.close()  # no public close: drops the pipes a surviving descendant may still hold


async def start_worker(follower: str | None, limits: Limits, allow_weak_sandbox: bool = False, *,
                       warm: bool = False) -> Worker:
    """Start a jailed child, boot it and wait until its follower is loaded (``limits.load_s``);
    ``warm``: also import everything a program may need before reporting it loaded (pools)."""
    isolation = isolation_measures(allow_weak_sandbox)
    boot = {"follower": follower, "memory_mb": limits.memory_mb, "cpu_s": limits.cpu_seconds(), "warm": warm,
            "file_bytes": SCRATCH_BYTES, "threads": limits.threads, "open_files": limits.open_files}
    python = [sys.executable, "-I", "-m", "selfsteer.planners.sandbox_child"]
    with contextlib.ExitStack() as stack:
        if set(LAYERS) - set(jail_layers().missing) >= {"mount-namespace", "seccomp"}:
            bpf = stack.enter_context(seccomp_file())
            try:
                paths = await asyncio.to_thread(readable_paths, follower)
            except (ModelNotFound, OSError, ValueError, subprocess.SubprocessError) as e:
                raise SandboxError("load", f"the follower {follower!r} could not be loaded: {e}") from None
            cmd, fds = [*jail_command(paths, bpf.fileno()), *python], (bpf.fileno(),)
        else:
            cmd, fds = python, ()
        proc = await asyncio.create_subprocess_exec(
            *cmd, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            start_new_session=True, pass_fds=fds, env=child_env(), cwd="/", limit=MAX_LINE_BYTES,
        )
    worker = Worker(proc, limits, isolation)
    worker.drain = asyncio.create_task(_drain(proc.stderr, worker.stderr))
    try:
        await _send(worker, boot)
        key, value = await _read_report(proc, limits.load_s, "loading the follower", limits)
        if key == "error":
            _raise_error(value)
        if key != "loaded":
            raise SandboxError("protocol", f"the sandbox sent {key!r} where 'loaded' was due")
    except SandboxError as e:
        e.stderr_tail = worker.stderr.decode(errors="replace")
        await worker.close()
        raise
    except BaseException:
        await worker.close()
        raise
    return worker


async def _send(worker: Worker, obj: dict) -> None:
    try:
        worker.proc.stdin.write((json.dumps(obj) + "\n").encode())
        await asyncio.wait_for(worker.proc.stdin.drain(), worker.limits.load_s)
    except (TimeoutError, ConnectionError, BrokenPipeError) as e:
        raise SandboxError("crash", f"the sandbox process stopped reading its job ({type(e).__name__})") from None


def _raise_error(value: Any) -> None:
    try:
        kind, message = checked_error(value)
    except ReportError as e:
        raise SandboxError("protocol", f"the sandbox sent an invalid error report: {e}") from None
    raise SandboxError(kind, message)


async def run_job(worker: Worker, job: dict) -> SandboxRun:
    """Run one job on a booted worker and close it (a worker serves exactly one program)."""
    limits, proc = worker.limits, worker.proc
    try:
        await _send(worker, job)
        proc.stdin.close()
        key, value = await _read_report(proc, limits.load_s, "preparing the engine", limits)
        isolation = list(worker.isolation)
        if key == "ready":
            isolation += ["rlimits"] if isinstance(value, dict) and value.get("isolation") == ["rlimits"] else []
            key, value = await _read_report(proc, limits.wall_s, "the program", limits, grace=PIPE_GRACE_S)
        if key == "error":
            _raise_error(value)
        if key != "summary":
            raise SandboxError("protocol", f"the sandbox sent {key!r} where a result was due")
        try:
            summary = RunSummary.from_dict(checked_summary(value))
        except (ReportError, TypeError, ValueError) as e:
            raise SandboxError("protocol", f"the sandbox sent an invalid summary report: {e}") from None
    except SandboxError as e:
        e.stderr_tail = worker.stderr.decode(errors="replace")
        raise
    finally:
        await worker.close()
    summary.isolation = isolation
    return SandboxRun(summary, isolation)


def program_job(program: ValidatedProgram | None, task: str, *, n_particles: int = 8, seed: int | None = None,
                ess_threshold: float = 0.5, limits: Limits = Limits(), scaling: dict | None = None,
                library: tuple[str, dict] | None = None) -> dict:
    """The job line for a worker: a validated program, or ``library=(program name, params)``."""
    job = {"task": task, "n_particles": n_particles, "seed": seed, "ess_threshold": ess_threshold,
           "max_steps": limits.max_steps, "time_limit": limits.wall_s, "scaling": scaling or {}}
    if library is not None:
        job.update(library=library[0], params=library[1])
    else:
        job.update(source=program.source, class_name=program.class_name)
    return job


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
    allow_weak_sandbox: bool = False,
) -> SandboxRun:
    """Run a validated program on ``task`` in the sandbox (see the module docstring).

    ``scaling``: test-time scaling options as JSON (`ScalingOptions.to_json`).
    ``allow_weak_sandbox``: run even when `jail_layers` reports a missing layer (else
    `SandboxUnavailable`).
    """
    worker = await start_worker(follower, limits, allow_weak_sandbox)
    job = program_job(program, task, n_particles=n_particles, seed=seed, ess_threshold=ess_threshold, limits=limits,
                      scaling=scaling)
    return await run_job(worker, job)


def run_sandboxed_sync(program: ValidatedProgram, task: str, **kwargs: Any) -> SandboxRun:
    """`run_sandboxed` from synchronous code."""
    from selfsteer.smc.inference import run_sync

    return run_sync(run_sandboxed(program, task, **kwargs))
