"""The sandbox's child process: load the follower, run one untrusted program, report JSON.

Started by `selfsteer.planners.sandbox` inside the OS jail (`selfsteer.planners.jail`) as
``python -I -m selfsteer.planners.sandbox_child``. It reads two JSON lines on stdin, the boot
(limits, follower) and then the job (a warm pool sends it when a program is due), and writes
JSON lines on its original stdout: ``{"loaded": {}}`` once the follower is loaded,
``{"ready": ...}`` once the engine's imports are done, just before the program's module code runs
(the parent's program clock starts then), and the outcome (``{"summary": ...}`` or
``{"error": {"kind", "message"}}``). Everything the program prints goes to stderr. Never import
this module in the caller's process.

Order matters: resource limits first, then the (trusted) follower load and every import the
engine and the allowed APIs need (genlm-control when the program may build constraints), then the
program's module is executed with restricted builtins and an import guard, then the program runs.
The OS jail is in force from the first instruction.
"""

from __future__ import annotations

import asyncio
import builtins
import errno
import importlib
import json
import linecache
import os
import resource
import sys
import time
import traceback

from selfsteer.planners.outcome import ScalingOptions, smc_extras, summarize
from selfsteer.planners.report import clip

PROGRAM_FILE = "<planned program>"
# genlm-control modules the constraint APIs import lazily: imported before program code runs
GENLM_MODULES = (
    "genlm.control.potential.built_in.wcfg", "genlm.control.potential.built_in.json",
    "genlm.control.potential.built_in.wfsa", "genlm.control.potential.coerce", "genlm.control.sampler.token",
)
CONSTRAINT_NAMES = ("Regex", "Grammar", "JsonSchema")
LIBRARY_HINT = "selfsteer.programs"  # library jobs may build constraints: import genlm up front
DENIED_ERRNOS = frozenset({errno.EPERM, errno.EACCES, errno.EROFS, errno.ENOSYS, errno.EFBIG})


def set_limits(job: dict) -> None:
    """Address space, CPU seconds, no core dumps, files up to the scratch size, processes/threads."""
    memory = job["memory_mb"] << 20
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (job["cpu_s"], job["cpu_s"] + 5))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (job["file_bytes"], job["file_bytes"]))
    resource.setrlimit(resource.RLIMIT_NPROC, (job["threads"], job["threads"]))


def load_follower(follower: str | None):
    if follower != "exact":
        import torch

        torch.set_num_threads(1)  # one core per sandboxed run: several run side by side
    from selfsteer.smc import load_lm

    return load_lm(follower)


def prepare_imports(source: str) -> None:
    """Import every allowed module now, and genlm-control's lazily imported parts when the program
    may build constraints, so that their import time (seconds) is not charged to the program's
    wall clock. (Lazy imports work in the jail too: the packages are mounted read-only.)"""
    from selfsteer.planners.allowlist import LIBRARY_PACKAGE, allowed_imports

    uses_constraints = any(name in source for name in (*CONSTRAINT_NAMES, LIBRARY_PACKAGE))
    for module in (*allowed_imports(), *(GENLM_MODULES if uses_constraints else ())):
        importlib.import_module(module)


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
    linecache.cache[PROGRAM_FILE] = (len(source), None, source.splitlines(True), PROGRAM_FILE)
    namespace = {"__builtins__": restricted_builtins(), "__name__": "planned_program"}
    exec(compile(source, PROGRAM_FILE, "exec"), namespace)
    cls = namespace.get(class_name)
    if not isinstance(cls, type):
        raise TypeError(f"the program defines no class named {class_name!r}")
    return cls


def program_location(exc: BaseException) -> str:
    """`` (in step(), line 12: `x = 1 / 0`)`` for the innermost frame of the program, if any."""
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
    if isinstance(inner, OSError) and inner.errno in DENIED_ERRNOS:
        return {"kind": "violation", "message": f"the sandbox blocked an operation ({type(inner).__name__}: {_text(inner)}){where}: "
                                                "programs may not touch files, processes or the network"}
    if isinstance(inner, MemoryError):
        return {"kind": "memory", "message": f"the program ran out of memory (limit {memory_mb} MiB){where}; do not build huge strings or lists"}
    if isinstance(inner, RecursionError):
        return {"kind": "recursion", "message": f"the program recursed too deeply{where}; use a loop instead of recursion"}
    return {"kind": "program", "message": clip(f"{type(inner).__name__}: {_text(inner)}{where}")}


def _text(exc: BaseException) -> str:
    """``str(exc)``, or a note when the program's exception cannot even be printed."""
    try:
        return clip(str(exc))
    except Exception as e:  # noqa: BLE001 - a hostile __str__
        return f"<unprintable: {type(e).__name__}>"


def library_program(name: str) -> type:
    """The trusted library program called ``name`` (a pool can run library plans too)."""
    from selfsteer.programs.registry import all_programs

    for cls in all_programs():
        if cls.SPEC.name == name:
            return cls
    raise ValueError(f"no library program named {name!r}")


def program_class(job: dict) -> type:
    """The job's program class: a library program, or the untrusted source executed now."""
    if "library" in job:
        return library_program(job["library"])
    return load_program(job["source"], job["class_name"])


async def run_program(cls: type, lm, job: dict):
    from selfsteer.smc import smc_async

    params = cls.SPEC.validate(dict(job.get("params", {}))) if "library" in job else {}
    model = cls(lm, job["task"], **params)
    return await smc_async(
        model, job["n_particles"], seed=job.get("seed"), max_steps=job["max_steps"],
        time_limit=job["time_limit"], ess_threshold=job.get("ess_threshold", 0.5),
        **smc_extras(ScalingOptions.from_json(job.get("scaling", {}))),
    )


def main() -> None:
    """Boot (first stdin line: limits and follower), report ``loaded``, then run the job (second
    line; a warm pool sends it later) and report ``ready`` and the outcome."""
    sys.dont_write_bytecode = True  # the packages are mounted read-only
    boot = json.loads(sys.stdin.readline())
    report = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # the program's prints go to stderr, not into the report

    def send(obj: dict) -> None:
        report.write(json.dumps(obj) + "\n")
        report.flush()

    memory_mb = boot["memory_mb"]
    set_limits(boot)
    try:
        lm = load_follower(boot.get("follower"))
    except Exception as e:  # noqa: BLE001 - trusted code, reported as a load failure
        send({"error": {"kind": "load", "message": f"the follower {boot.get('follower')!r} could not be loaded: {e}"}})
        return
    try:
        if boot.get("warm"):  # a pool worker: the job is not known yet, so import everything now
            prepare_imports(LIBRARY_HINT)
        send({"loaded": {}})
        job = json.loads(sys.stdin.readline() or "{}")
        os.close(0)
        prepare_imports(job.get("source", LIBRARY_HINT))
    except Exception as e:  # noqa: BLE001 - trusted code
        send({"error": {"kind": "load", "message": f"the engine's imports failed: {e}"}})
        return
    loop = asyncio.new_event_loop()
    resource.setrlimit(resource.RLIMIT_NOFILE, (boot["open_files"], boot["open_files"]))
    send({"ready": {"isolation": ["rlimits"]}})
    started = time.monotonic()
    try:
        cls = program_class(job)
        result = loop.run_until_complete(run_program(cls, lm, job))
        summary = summarize(result, time.monotonic() - started, ScalingOptions.from_json(job.get("scaling", {})))
    except BaseException as e:  # noqa: BLE001 - every failure of untrusted code becomes feedback
        send({"error": describe(e, memory_mb)})
        return
    send({"summary": summary.to_dict()})


if __name__ == "__main__":
    main()
