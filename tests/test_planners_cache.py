"""The program cache: atomic records, concurrent writers lose nothing, a killed writer leaves no
half-written record behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from selfsteer.planners.cache import AttemptRecord, ProgramCache
from selfsteer.planners.outcome import RunSummary
from selfsteer.planners.plan import Plan

SUMMARY = RunSummary("completed", -1.5, 2, 3, 2, 0, [("a dog", 1.0)]).to_dict()

WRITER = textwrap.dedent("""
    import sys
    from selfsteer.planners.cache import AttemptRecord, ProgramCache
    root, tag, n, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    cache = ProgramCache(root)
    for i in range(n):
        cache.record(AttemptRecord(task="shared task", planner="p", attempt=i, error=tag + ":" + str(i) + ":" + "x" * size))
        print(i, flush=True)
""")


def test_record_roundtrip_and_latest_working(tmp_path):
    cache = ProgramCache(tmp_path)
    plan = Plan(source="class P: pass", class_name="P", origin="lm", prompt=[{"role": "user", "content": "t"}], completion="c")
    cache.record(AttemptRecord(task="t", planner="p", attempt=1, plan=plan.to_dict(), error="boom", error_kind="program"))
    assert cache.latest_working("t", "p") is None
    cache.record(AttemptRecord(task="t", planner="p", attempt=2, plan=plan.to_dict(), summary=SUMMARY, passed=True))
    records = cache.attempts("t", "p")
    assert [r.attempt for r in records] == [1, 2]
    best = cache.latest_working("t", "p")
    assert best.attempt == 2 and best.to_plan() == plan and best.prompt == plan.prompt and best.completion == "c"
    assert cache.attempts("t", "another planner") == [] and cache.attempts("another task", "p") == []


def test_concurrent_thread_writers_lose_nothing(tmp_path):
    cache = ProgramCache(tmp_path)

    def write(tag: int) -> None:
        for i in range(25):
            cache.record(AttemptRecord(task="t", planner="p", attempt=i, error=f"{tag}:{i}"))

    threads = [threading.Thread(target=write, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    errors = sorted(r.error for r in cache.attempts("t", "p"))
    assert errors == sorted(f"{k}:{i}" for k in range(8) for i in range(25))


def test_concurrent_process_writers_lose_nothing(tmp_path):
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), f"w{k}", "20", "1000"],
                              stdout=subprocess.DEVNULL) for k in range(4)]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    tags = sorted(r.error.split(":")[0] + ":" + r.error.split(":")[1] for r in ProgramCache(tmp_path).attempts("shared task", "p"))
    assert tags == sorted(f"w{k}:{i}" for k in range(4) for i in range(20))


def test_writer_killed_mid_write_leaves_only_whole_records(tmp_path):
    # 8 MB records take long enough to write that a SIGKILL lands mid-write with high probability.
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), "k", "1000", str(8 << 20)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "0"  # at least one record is complete
    time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    folder = ProgramCache(tmp_path).directory("shared task", "p")
    visible = sorted(folder.glob("[0-9]*.json"))
    for path in visible:  # every visible record parses completely
        assert json.loads(path.read_text())["error"].endswith("x" * 100)
    records = ProgramCache(tmp_path).attempts("shared task", "p")
    assert len(records) == len(visible) >= 1
    assert [r.attempt for r in records] == list(range(len(records)))
    leftovers = list(folder.glob(".tmp-*"))
    assert len(leftovers) <= 1  # the interrupted write, hidden from readers


GOOD_RECORD = {"task": "t", "planner": "p", "attempt": 1, "plan": None, "error": None, "error_kind": None,
               "summary": SUMMARY, "passed": True, "created": 1.0}
LM_PLAN = Plan(source="class P: pass", class_name="P").to_dict()


def _bad(path):
    """Each bad record, written under ``path`` (a record file name) in its own way."""
    return {
        "a JSON list": lambda: path.write_text("[1, 2]"),
        "task is a number": lambda: path.write_text(json.dumps({**GOOD_RECORD, "task": 7})),
        "unknown origin": lambda: path.write_text(json.dumps({**GOOD_RECORD, "plan": {**LM_PLAN, "origin": "root"}})),
        "passed is a string": lambda: path.write_text(json.dumps({**GOOD_RECORD, "passed": "yes"})),
        "NaN probability": lambda: path.write_text(json.dumps({**GOOD_RECORD, "summary": {**SUMMARY, "posterior": [["a", float("nan")]]}})),
        "deeply nested": lambda: path.write_text(json.dumps({**GOOD_RECORD, "error_kind": None}) [:-1] + ', "x": ' + "[" * 100000 + "]" * 100000 + "}"),
        "a FIFO": lambda: os.mkfifo(path),
        "a symlink": lambda: path.symlink_to("/etc/hostname"),
        "300 MB": lambda: os.truncate(path.write_text("{") and path, 300 << 20),
        "broken JSON": lambda: path.write_text('{"task": '),
    }


@pytest.mark.parametrize("name", list(_bad(None)))
def test_bad_records_are_skipped_with_a_warning(tmp_path, name):
    cache = ProgramCache(tmp_path)
    cache.record(AttemptRecord(**{**GOOD_RECORD, "attempt": 0}))
    folder = cache.directory("t", "p")
    _bad(folder / "00000000000000000001-1-bad.json")[name]()
    started = time.monotonic()
    with pytest.warns(UserWarning, match="skipping the program cache record .*bad.json"):
        records = cache.attempts("t", "p")
    assert [r.attempt for r in records] == [0] and time.monotonic() - started < 5


def test_huge_errors_in_records_are_clipped_on_read(tmp_path):
    cache = ProgramCache(tmp_path)
    cache.record(AttemptRecord(**{**GOOD_RECORD, "error": "x" * 1_000_000, "passed": False}))
    assert len(cache.attempts("t", "p")[0].error) < 2100
