"""A pool of warm sandbox workers: jailed children booted before they are needed.

Most of a sandboxed run's fixed cost is starting Python, importing the engine and loading the
follower. `SandboxPool` keeps ``size`` workers booted (limits set, follower loaded, imports done,
waiting for a job); a run takes one, sends its job and reads the result while a replacement boots
in the background. Every worker still serves exactly one program and is killed afterwards, so each
run has its own jail, seccomp filter, rlimits and scratch, in force before any of its code runs,
exactly as with `selfsteer.planners.sandbox.run_sandboxed`.

    async with SandboxPool(size=2, limits=Limits(wall_s=60)) as pool:
        run = await pool.run(validated_program, task, n_particles=8, seed=0)
        run = await pool.run_library("regex", {"pattern": "[0-9]+"}, task)
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from .sandbox import Limits, SandboxRun, Worker, program_job, run_job, start_worker
from .validate import ValidatedProgram


class SandboxPool:
    """``size`` warm workers for one follower and one set of limits (see the module docstring)."""

    def __init__(self, size: int = 1, *, follower: str | None = None, limits: Limits = Limits(),
                 allow_weak_sandbox: bool = False):
        if size < 1:
            raise ValueError(f"a pool needs at least one worker, got size={size}")
        self.size, self.follower, self.limits, self.allow_weak_sandbox = size, follower, limits, allow_weak_sandbox
        self._booting: list[asyncio.Task[Worker]] = []

    async def __aenter__(self) -> SandboxPool:
        self._fill()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    def _fill(self) -> None:
        while len(self._booting) < self.size:
            self._booting.append(asyncio.create_task(
                start_worker(self.follower, self.limits, self.allow_weak_sandbox, warm=True)))

    async def worker(self) -> Worker:
        """A booted worker (waits for the oldest one to finish booting); a replacement starts now."""
        self._fill()
        task = self._booting.pop(0)
        self._fill()
        return await task

    async def run(self, program: ValidatedProgram, task: str, **options: Any) -> SandboxRun:
        """Run a validated program on a warm worker; ``options`` as for `program_job`."""
        return await run_job(await self.worker(), program_job(program, task, limits=self.limits, **options))

    async def run_library(self, name: str, params: dict, task: str, **options: Any) -> SandboxRun:
        """Run the library program ``name`` with ``params`` on a warm worker."""
        job = program_job(None, task, limits=self.limits, library=(name, params), **options)
        return await run_job(await self.worker(), job)

    async def close(self) -> None:
        """Kill every worker, booted or booting."""
        booting, self._booting = self._booting, []
        for task in booting:
            task.cancel()
        for task in booting:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await (await task).close()
