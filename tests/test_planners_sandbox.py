"""The sandbox with the real follower: a generated program that loops forever, allocates 50 GB,
recurses without end, or reaches for os.system/open is stopped with a precise message, and the
caller survives. A well-behaved program returns the same answer as an in-process run."""

from __future__ import annotations

import asyncio
import os
import time

import pytest
from test_planners_validate import program

from selfsteer.planners.outcome import summarize
from selfsteer.planners.sandbox import (
    Limits,
    SandboxError,
    isolation_measures,
    run_sandboxed,
    run_sandboxed_sync,
)
from selfsteer.planners.validate import ValidatedProgram, validate_program
from selfsteer.smc import smc

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
FAKE_ROOT = "/tmp/selfsteer-sandbox-test-pwned"


def unvalidated(source: str) -> ValidatedProgram:
    """Skip the static validator on purpose, to test the runtime layers behind it."""
    return ValidatedProgram(source, "P")


ATTACKS = {
    "infinite loop": (validate_program(program("n = 0\nwhile True:\n    n += 1")), "timeout", "wall-clock limit of 8 s"),
    "50 GB": (validate_program(program('blob = "x" * (50 * 10**9)\nself.finish(blob)')), "memory", "ran out of memory"),
    "recursion": (validate_program(program("self.finish(str(dive(0)))", top="\ndef dive(n):\n    return dive(n + 1) + 1\n")),
                  "recursion", "recursed too deeply (in dive(), line"),
    "os.system via subclasses": (unvalidated(program(
        'for c in ().__class__.__base__.__subclasses__():\n'
        '    if c.__name__ == "_wrap_close":\n'
        f'        c.__init__.__globals__["system"]("touch {FAKE_ROOT}")\n'
        'self.finish("x")')), "violation", "blocked os.system"),
}
# runtime layers behind the validator, checked on the tiny exact LM (fast): prior and task are "a"
EXACT_ATTACKS = {
    "import os": (program(f'__import__("os").system("touch {FAKE_ROOT}")'), "program", "importing 'os' is not allowed"),
    "open": (program('self.finish(open("/etc/hostname").read())'), "program", "name 'open' is not defined"),
    "getattr": (program('getattr(self, "x")'), "program", "name 'getattr' is not defined"),
    "file write via a subclasses walk": (program(
        'todo = [().__class__.__base__]\n'
        'while todo:\n'
        '    c = todo.pop()\n'
        '    if c.__name__ == "FileIO":\n'
        f'        c("{FAKE_ROOT}", "w")\n'
        '    try:\n'
        '        todo.extend(c.__subclasses__())\n'
        '    except TypeError:\n'
        '        pass\n'
        'self.finish("x")'), "violation", f"blocked opening '{FAKE_ROOT}' for writing"),
}


@pytest.mark.slow
def test_attacks_are_stopped_and_the_caller_survives(lm):
    limits = Limits(wall_s=8, memory_mb=6144)

    async def attempt(prog: ValidatedProgram):
        try:
            return await run_sandboxed(prog, TASK, n_particles=2, seed=0, limits=limits)
        except SandboxError as e:
            return e

    async def all_runs():
        return await asyncio.gather(*(attempt(p) for p, _, _ in ATTACKS.values()), attempt(validate_program(GOOD)))

    started = time.monotonic()
    *outcomes, good = asyncio.run(all_runs())
    for (name, (_, kind, fragment)), outcome in zip(ATTACKS.items(), outcomes, strict=True):
        assert isinstance(outcome, SandboxError), f"{name}: {outcome}"
        assert outcome.kind == kind and fragment in str(outcome), f"{name}: {outcome.kind}: {outcome}"
    assert not os.path.exists(FAKE_ROOT)
    assert time.monotonic() - started < 240
    # the well-behaved program, run alongside, matches an in-process run with the same seed (the
    # child runs torch on one thread, so weights agree to float rounding, not bit for bit)
    in_process = summarize(smc(_load(GOOD)(lm, TASK), 2, seed=0))
    assert [o for o, _ in good.summary.posterior] == [o for o, _ in in_process.posterior]
    assert [p for _, p in good.summary.posterior] == pytest.approx([p for _, p in in_process.posterior], rel=1e-3, abs=1e-6)
    assert set(isolation_measures()) <= set(good.isolation) and "audit-hook" in good.isolation


def _load(source: str):
    namespace: dict = {}
    exec(compile(source, "good", "exec"), namespace)  # trusted test code
    return namespace["Short"]


@pytest.mark.parametrize("name", list(EXACT_ATTACKS))
def test_runtime_layers_stop_what_gets_past_validation(name):
    source, kind, fragment = EXACT_ATTACKS[name]
    with pytest.raises(SandboxError) as info:
        run_sandboxed_sync(unvalidated(source.replace('"Write."', '"a"')), "a", follower="exact", limits=Limits(wall_s=20))
    assert info.value.kind == kind and fragment in str(info.value), str(info.value)
    assert not os.path.exists(FAKE_ROOT)


def test_bad_follower_is_a_load_error():
    with pytest.raises(SandboxError, match="could not be loaded") as info:
        run_sandboxed_sync(validate_program(GOOD), TASK, follower="/no/such/model.gguf", limits=Limits(wall_s=5))
    assert info.value.kind == "load"


def test_program_errors_point_at_the_program_line():
    source = program("x = 1 / 0").replace('"Write."', '"a"')
    with pytest.raises(SandboxError, match=r"ZeroDivisionError: division by zero \(in step\(\), line \d+: `x = 1 / 0`\)"):
        run_sandboxed_sync(validate_program(source), "a", follower="exact", limits=Limits(wall_s=20))
