"""The sandbox's result channel against real child processes that send what an attacker would:
oversized, deeply nested, forged, non-finite or huge reports are clear errors, a valid forged
summary is only that program's answer, and a descendant that keeps the pipes open does not hang
the caller. No jail needed: these children run unjailed on purpose, to attack the parent's side."""

from __future__ import annotations

import asyncio
import os
import sys
import time

import pytest

from selfsteer.planners.report import MAX_MESSAGE_CHARS
from selfsteer.planners.sandbox import Limits, SandboxError, Worker, _drain, run_job


def _fake_child(lines_code: str, limits: Limits = Limits(load_s=10, wall_s=10)):
    """Supervise a real child process that writes whatever ``lines_code`` writes to stdout."""
    code = "import sys, json\nsys.stdin.read()\nw = sys.stdout.write\n" + lines_code + "\nsys.stdout.flush()\n"

    async def go():
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", code, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, start_new_session=True, limit=1 << 20)
        worker = Worker(proc, limits, ["process"])
        worker.drain = asyncio.create_task(_drain(proc.stderr, worker.stderr))
        try:
            return await run_job(worker, {})
        except SandboxError as e:
            return e

    started = time.monotonic()
    return asyncio.run(go()), time.monotonic() - started


READY = 'w(json.dumps({"ready": {"isolation": ["rlimits"]}}) + "\\n")\n'
SUMMARY = {"status": "completed", "log_ml": -1.0, "n_particles": 2, "n_steps": 3, "n_finished": 2, "n_check_failed": 0,
           "posterior": [["a", 1.0]], "time_s": 0.1, "responses": [], "failed_step_fraction": None, "vote": None}


@pytest.mark.parametrize("name,lines,kind,fragment", [
    ("line over the limit", READY + 'w("[" * 10 + "1" * (3 << 20) + "\\n")', "protocol", "larger than 1048576 bytes"),
    ("deep nesting", READY + 'w("[" * 200000 + "]" * 200000 + "\\n")', "protocol", "nested deeper than 16 levels"),
    ("nesting over the depth limit", READY + 'w(json.dumps({"summary": json.loads("[" * 20 + "]" * 20)}) + "\\n")',
     "protocol", "nested deeper than 16 levels"),
    ("forged key", READY + 'w(json.dumps({"pwned": 1}) + "\\n")', "protocol", "exactly one of the keys"),
    ("forged error kind", READY + 'w(json.dumps({"error": {"kind": "root", "message": "x"}}) + "\\n")', "protocol",
     "unknown error kind"),
    ("NaN probability", READY + f'w(json.dumps({{"summary": {{**{SUMMARY!r}, "posterior": [["a", float("nan")]]}}}}) + "\\n")',
     "protocol", "non-finite number"),
    ("probability over 1", READY + f'w(json.dumps({{"summary": {{**{SUMMARY!r}, "posterior": [["a", 7.0]]}}}}) + "\\n")',
     "protocol", "not in [0, 1]"),
    ("missing field", READY + 'w(json.dumps({"summary": {"status": "completed"}}) + "\\n")', "protocol", "`log_ml` must be a number"),
    ("silent exit", "", "crash", "exited with status 0 without reporting"),
])
def test_forged_reports_are_clear_errors(name, lines, kind, fragment):
    outcome, seconds = _fake_child(lines)
    assert isinstance(outcome, SandboxError) and outcome.kind == kind and fragment in str(outcome), str(outcome)
    assert seconds < 20


def test_huge_error_messages_are_clipped():
    outcome, _ = _fake_child(READY + 'w(json.dumps({"error": {"kind": "program", "message": "x" * 900000}}) + "\\n")')
    assert outcome.kind == "program" and len(str(outcome)) < MAX_MESSAGE_CHARS + 100


def test_a_valid_forged_summary_is_only_the_programs_answer():
    outcome, _ = _fake_child(READY + f'w(json.dumps({{"summary": {SUMMARY!r}}}) + "\\n")')
    assert outcome.summary.answer == "a" and outcome.isolation == ["process", "rlimits"]


def test_a_descendant_holding_the_pipes_does_not_hang_the_caller(tmp_path):
    # without the jail (the weak sandbox): a grandchild in its own session keeps stdout and stderr open
    pid_file = tmp_path / "pid"
    code = (f"import os, time\nif os.fork() == 0:\n    os.setsid()\n    open({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
            "    time.sleep(120)\nos._exit(0)")
    outcome, seconds = _fake_child(code, Limits(load_s=3, wall_s=3))
    try:
        assert isinstance(outcome, SandboxError) and outcome.kind == "timeout" and seconds < 3 + 12
    finally:
        for _ in range(50):
            if pid_file.exists() and pid_file.read_text():
                os.kill(int(pid_file.read_text()), 9)
                break
            time.sleep(0.1)
