"""The sandbox's child process: load the follower, run one untrusted program, report JSON.

Started by `selfsteer.planners.sandbox` as ``python -I -m selfsteer.planners.sandbox_child``
with the job as JSON on stdin. It writes two JSON lines on its original stdout: ``{"ready": ...}``
once the follower is loaded (the parent's run clock starts then), and the outcome
(``{"summary": ...}`` or ``{"error": {"kind", "message"}}``). Everything the program prints goes
to stderr. Never import this module in the caller's process: it changes process-wide state.

Order matters: limits first, then the (trusted) follower load, then the program is compiled and
executed with restricted builtins, then the process locks itself down (no file writes, no new
processes, sockets, ctypes or rlimit changes, lower privileges), and only then does program code
run.
"""

from __future__ import annotations

import asyncio
import builtins
import importlib
import json
import linecache
import os
import resource
import stat
import sys
import time
import traceback
from pathlib import Path

from selfsteer.planners.outcome import ScalingOptions, smc_extras, summarize

PROGRAM_FILE = "<planned program>"
NOBODY = 65534
BLOCKED_PREFIXES = (
    "subprocess.", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty",
    "os.kill", "os.killpg", "os.remove", "os.unlink", "os.rmdir", "os.rename", "os.truncate",
    "os.chmod", "os.chown", "os.mkdir", "os.symlink", "os.link", "os.utime", "os.chdir", "os.setuid", "os.setgid", "shutil.", "socket.", "ctypes.", "pty.",
    "resource.setrlimit", "resource.prlimit", "sys.addaudithook", "sys.settrace", "sys.setprofile",
    "urllib.", "http.", "ftplib.", "smtplib.", "webbrowser.", "code.__new__", "function.__new__",
)
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


class SandboxViolation(BaseException):
    """The program tried something the sandbox forbids (a BaseException: `except Exception` cannot hide it)."""


VIOLATIONS: list[str] = []


def set_limits(memory_mb: int, cpu_s: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (memory_mb << 20, memory_mb << 20))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 5))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def load_follower(follower: str | None):
    if follower != "exact":
        import torch

        torch.set_num_threads(1)  # one core per sandboxed run: several run side by side
    from selfsteer.smc import load_lm

    return load_lm(follower)


def restricted_builtins() -> dict:
    from selfsteer.planners.allowlist import SAFE_BUILTINS, allowed_imports

    def guarded_import(name, globals=None, locals=None, fromlist=(), level=0):
        if level or name not in allowed_imports():
            raise ImportError(f"importing {name!r} is not allowed in programs")
        for item in fromlist or ():
            if item not in allowed_imports()[name]:
                raise ImportError(f"{item!r} cannot be imported from {name}")
        return importlib.import_module(name)

    safe = {name: getattr(builtins, name) for name in SAFE_BUILTINS}
    safe["__build_class__"] = builtins.__build_class__
    safe["__import__"] = guarded_import
    return safe


def load_program(source: str, class_name: str) -> type:
    """Execute the (validated) source with restricted builtins and return its program class."""
    from selfsteer.planners.allowlist import allowed_imports

    for module in allowed_imports():  # import now, while imports may still open files
        importlib.import_module(module)
    linecache.cache[PROGRAM_FILE] = (len(source), None, source.splitlines(True), PROGRAM_FILE)
    namespace = {"__builtins__": restricted_builtins(), "__name__": "planned_program"}
    exec(compile(source, PROGRAM_FILE, "exec"), namespace)
    cls = namespace.get(class_name)
    if not isinstance(cls, type):
        raise TypeError(f"the program defines no class named {class_name!r}")
    return cls


def readable_roots() -> tuple[str, ...]:
    """Directories whose files trusted code may still read lazily: Python, packages, the model cache."""
    import selfsteer.planners
    import selfsteer.programs
    import selfsteer.smc
    from selfsteer.smc.lm.loading import cache_dir

    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, str(cache_dir()), "/proc/", "/sys/", "/dev/null", "/dev/urandom"}
    roots |= {p for p in sys.path if p}
    roots |= {str(Path(m.__file__).parent) for m in (selfsteer.smc, selfsteer.planners, selfsteer.programs)}
    return tuple(sorted(roots))


def world_readable(path: str) -> bool:
    """True if a user with no rights of its own (``nobody``) can read ``path`` and its ancestors."""
    p = Path(path).resolve()
    for q in (p, *p.parents):
        try:
            mode = q.stat().st_mode
        except OSError:
            return False
        if not mode & stat.S_IXOTH or (q == p and not mode & stat.S_IROTH):
            return False
    return True


def audit_hook(roots: tuple[str, ...]):
    def hook(event: str, args: tuple) -> None:
        if event == "open":
            path, mode, flags = (list(args) + [None, None, None])[:3]
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                mode is None and isinstance(flags, int) and flags & WRITE_FLAGS
            )
            outside = isinstance(path, (str, bytes)) and not os.fsdecode(path).startswith(roots)
            if writing or outside:
                deny(f"opening {os.fsdecode(path) if isinstance(path, (str, bytes)) else path!r}"
                     f"{' for writing' if writing else ''}")
        elif event in ("os.listdir", "os.scandir"):
            path = args[0] if args else "."
            if not isinstance(path, (str, bytes)) or not os.path.abspath(os.fsdecode(path)).startswith(roots):
                deny(f"listing the directory {path!r}")
        elif event.startswith(BLOCKED_PREFIXES):
            deny(event)

    return hook


def deny(what: str) -> None:
    VIOLATIONS.append(what)
    raise SandboxViolation(f"the sandbox blocked {what}: programs may not touch files, processes or the network")


def lock_down() -> list[str]:
    """Drop what a program could misuse; returns the isolation measures that took effect."""
    measures = ["rlimits", "restricted-builtins"]
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    roots = readable_roots()
    if os.geteuid() == 0 and all(world_readable(r) for r in (sys.base_prefix, sys.prefix)):
        # as nobody, lazy imports must still find Python's files; skipped when they are private to root
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            measures.append("uid-nobody")
        except OSError:
            pass
    sys.addaudithook(audit_hook(roots))
    measures.append("audit-hook")
    return measures


def program_location(exc: BaseException) -> str:
    """`` (in step(), line 12: `x = 1 / 0`)`` for the innermost frame of the program, if any.

    Reads lines only from the program's own linecache entry: no source file is opened.
    """
    frames = [(f, line) for f, line in traceback.walk_tb(exc.__traceback__) if f.f_code.co_filename == PROGRAM_FILE]
    if not frames:
        return ""
    frame, line = frames[-1]
    text = linecache.getline(PROGRAM_FILE, line).strip()
    return f" (in {frame.f_code.co_name}(), line {line}: `{text}`)"


def describe(exc: BaseException, memory_mb: int) -> dict:
    """Turn an exception into ``{"kind", "message"}`` feedback for the planner."""
    inner = exc.__cause__ if exc.__cause__ is not None else exc
    where = program_location(inner) or program_location(exc)
    if VIOLATIONS or isinstance(inner, SandboxViolation):
        what = VIOLATIONS[0] if VIOLATIONS else str(inner)
        return {"kind": "violation", "message": f"the sandbox blocked {what}{where}: programs may not touch files, processes or the network"}
    if isinstance(inner, MemoryError):
        return {"kind": "memory", "message": f"the program ran out of memory (limit {memory_mb} MiB){where}; do not build huge strings or lists"}
    if isinstance(inner, RecursionError):
        return {"kind": "recursion", "message": f"the program recursed too deeply{where}; use a loop instead of recursion"}
    return {"kind": "program", "message": f"{type(inner).__name__}: {inner}{where}"}


async def run_program(cls: type, lm, job: dict):
    from selfsteer.smc import smc_async

    model = cls(lm, job["task"])
    return await smc_async(
        model, job["n_particles"], seed=job.get("seed"), max_steps=job["max_steps"],
        time_limit=job["time_limit"], ess_threshold=job.get("ess_threshold", 0.5),
        **smc_extras(ScalingOptions.from_json(job.get("scaling", {}))),
    )


def main() -> None:
    sys.dont_write_bytecode = True  # lazy imports after lock-down must not try to write .pyc files
    job = json.loads(sys.stdin.read())
    report = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # the program's prints go to stderr, not into the report

    def send(obj: dict) -> None:
        report.write(json.dumps(obj) + "\n")
        report.flush()

    memory_mb = job["memory_mb"]
    set_limits(memory_mb, job["cpu_s"])
    try:
        lm = load_follower(job.get("follower"))
    except Exception as e:
        send({"error": {"kind": "load", "message": f"the follower {job.get('follower')!r} could not be loaded: {e}"}})
        return
    loop = asyncio.new_event_loop()  # made before lock-down: the loop needs a socketpair
    try:
        cls = load_program(job["source"], job["class_name"])
        os.chdir(Path(job["workdir"]))
        measures = lock_down()
        send({"ready": {"isolation": measures}})
        started = time.monotonic()
        result = loop.run_until_complete(run_program(cls, lm, job))
    except BaseException as e:  # noqa: BLE001 - every failure of untrusted code becomes feedback
        send({"error": describe(e, memory_mb)})
        return
    try:
        summary = summarize(result, time.monotonic() - started, ScalingOptions.from_json(job.get("scaling", {})))
    except BaseException as e:  # noqa: BLE001 - an answer the aggregator cannot read is the program's fault
        send({"error": describe(e, memory_mb)})
        return
    send({"summary": summary.to_dict()})


if __name__ == "__main__":
    main()
