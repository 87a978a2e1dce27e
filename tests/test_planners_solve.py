"""`solve`: the retry loop recovers from broken programs (fed back as errors), every attempt lands
in the program cache, a repeated task reuses its cached program, and hopeless cases stop early.

The planner is a real LMPlanner talking to a real HTTP server on 127.0.0.1 that answers from a
script; programs run in the real sandbox on the tiny exact LM (tokens "a", "b", " c").
"""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys

import pytest
from chat_server import ScriptedChatServer

from selfsteer.planners.cache import ProgramCache
from selfsteer.planners.lm_planner import LMPlanner
from selfsteer.planners.openai_client import OpenAIChat
from selfsteer.planners.plan import NoProgramFits, Plan
from selfsteer.planners.sandbox import Limits
from selfsteer.planners.solve import plan, solve

TASK = "a"  # the exact LM can only tokenise text made of its tokens


def exact_program(step: str = "", check: str = '"b" not in output') -> str:
    return f'''```python
from selfsteer.smc import TextModel


class NoB(TextModel):
    """Strategy: sample tokens until EOS. Step granularity: one token. End conditions: EOS."""

    def __init__(self, lm, task):
        super().__init__(lm, "a", max_tokens=8)

    async def step(self):
        {step or "pass"}
        tok = await self.next_token()
        if tok.is_eos:
            self.finish(self.text)

    def check(self, output):
        return {check}
```'''


INVALID = exact_program(step='__import__("os").system("id")')
CRASHES = exact_program(step="x = 1 / 0")
ALL_DEAD = exact_program(check="False")
GOOD = exact_program()


def http_planner(server: ScriptedChatServer) -> LMPlanner:
    chat = OpenAIChat(base_url=server.url, model="scripted", backoff=0.01)
    return LMPlanner(chat, name="scripted", examples=[])


def run(server, tmp_path, **kw):
    kw.setdefault("cache", ProgramCache(tmp_path))
    return solve(TASK, planner=http_planner(server), follower="exact", n_particles=4, seed=0,
                 limits=Limits(wall_s=30), **kw)


def test_retry_loop_recovers_from_broken_programs(tmp_path):
    with ScriptedChatServer([INVALID, CRASHES, GOOD]) as server:
        result = run(server, tmp_path)
    assert result.check_passed and result.attempt == 3 and not result.from_cache
    assert "b" not in result.answer and 0 < result.weight <= 1
    kinds = [a.error_kind for a in result.attempts]
    assert kinds == ["validation", "program", None]
    assert "`__import__` is not allowed" in result.attempts[0].error
    assert "ZeroDivisionError: division by zero (in step(), line" in result.attempts[1].error
    # each retry showed the planner its previous program and the error it ran into
    second, third = (r["body"]["messages"] for r in server.requests[1:])
    assert second[-2] == {"role": "assistant", "content": INVALID} and "`__import__` is not allowed" in second[-1]["content"]
    assert third[-2] == {"role": "assistant", "content": CRASHES} and "ZeroDivisionError" in third[-1]["content"]
    # all three attempts are in the cache, with prompt, completion, program, error and summary
    records = ProgramCache(tmp_path).attempts(TASK, "scripted")
    assert [r.attempt for r in records] == [1, 2, 3] and [r.passed for r in records] == [False, False, True]
    assert records[1].completion == CRASHES and records[1].prompt == second
    assert records[2].summary["posterior"][0][0] == result.answer


def test_repeated_task_reuses_the_cached_program(tmp_path):
    with ScriptedChatServer([GOOD]) as server:
        first = run(server, tmp_path)
    with ScriptedChatServer([]) as server:  # answers 500 if asked
        again = run(server, tmp_path)
        assert server.requests == []
    assert again.from_cache and again.attempt == 0 and again.answer == first.answer
    with ScriptedChatServer([GOOD]) as server:
        fresh = run(server, tmp_path, reuse=False)
        assert len(server.requests) == 1
    assert not fresh.from_cache and fresh.attempt == 1


def test_a_program_whose_particles_all_die_is_fed_back(tmp_path):
    with ScriptedChatServer([ALL_DEAD, ALL_DEAD]) as server:
        result = run(server, tmp_path, attempts=2)
    assert not result.check_passed and result.answer is None and result.attempt is None
    assert [a.error_kind for a in result.attempts] == ["no_output", "no_output"]
    assert "failed check()" in result.error


def test_scaling_options_reach_the_sandboxed_run(tmp_path):
    with ScriptedChatServer([GOOD]) as server:
        plain = run(server, tmp_path, cache=False)
    with ScriptedChatServer([GOOD]) as server:
        scaled = run(server, tmp_path, cache=False, vote="majority", trust=True)
    # voting and trust only read the run: the posterior is the plain run's
    assert scaled.summary.posterior == plain.summary.posterior
    responses = scaled.summary.responses
    assert scaled.vote["method"] == "majority" and scaled.vote["n_voters"] == len(responses) >= 2
    assert scaled.vote["answer"] in dict(scaled.summary.posterior)
    counts = {a: responses.count(a) for a in responses}
    assert scaled.vote["share"] == pytest.approx(max(counts.values()) / len(responses))
    t = scaled.trust
    assert t["n_responses"] == len(responses) and 0 <= t["isotropy"] <= math.log(len(responses)) + 1e-9
    assert 0 <= t["failed_step_fraction"] <= 1
    assert plain.vote is None and plain.trust is None and plain.summary.failed_step_fraction is None
    with ScriptedChatServer([GOOD]) as server:
        explored = run(server, tmp_path, cache=False, explore=2.0)
    assert explored.check_passed and "b" not in explored.answer


class NothingFits:
    name = "nothing"

    def __init__(self):
        self.calls = 0

    def plan(self, task, *, feedback=None):
        self.calls += 1
        raise NoProgramFits("no library program fits this task; configure a planner LM")


def test_no_program_fits_stops_at_once(tmp_path):
    planner = NothingFits()
    result = solve(TASK, planner=planner, follower="exact", cache=ProgramCache(tmp_path))
    assert planner.calls == 1 and result.attempts[0].error_kind == "no_program"
    assert "configure a planner LM" in result.error


def test_plan_retries_until_the_program_validates():
    with ScriptedChatServer([INVALID, GOOD]) as server:
        got = plan(TASK, planner=http_planner(server))
    assert isinstance(got, Plan) and got.class_name == "NoB" and "__import__" not in got.source


def test_bad_arguments_are_clear():
    with pytest.raises(ValueError, match="non-empty text"):
        solve("  ", planner=NothingFits())
    with pytest.raises(ValueError, match="attempts must be >= 1"):
        solve("x", planner=NothingFits(), attempts=0)
    with pytest.raises(ValueError, match="unknown vote 'mode'; choose one of majority"):
        solve("x", planner=NothingFits(), vote="mode")
    with pytest.raises(ValueError, match="explore must be >= 0"):
        solve("x", planner=NothingFits(), explore=-1)
    with pytest.raises(ValueError, match="unknown planner 'gpt-7'"):
        solve("x", planner="gpt-7")


def test_solve_inside_a_running_loop_names_solve_async():
    async def inside():
        with pytest.raises(RuntimeError, match=r"^solve\(\) was called .* `await solve_async\(\.\.\.\)`"):
            solve("x", planner=NothingFits())

    asyncio.run(inside())


@pytest.mark.slow
def test_default_planner_is_the_library_and_runs_in_process(lm, tmp_path, monkeypatch):
    from selfsteer.programs.tasks import passes

    for var in ("SELFSTEER_PLANNER", "SELFSTEER_PLANNER_MODEL"):
        monkeypatch.delenv(var, raising=False)
    task = "Write a sentence with exactly 5 words."
    result = solve(task, lm=lm, n_particles=2, seed=0, cache=ProgramCache(tmp_path))
    assert result.planner == "library" and result.plan.origin == "library" and result.attempt == 1
    assert result.plan.program_name == "sentence_word_count" and result.plan.params == {"n_words": 5}
    assert result.check_passed and passes({"unit": "sentence", "n_words": 5}, result.answer)
    assert 0 < result.weight <= 1


@pytest.mark.slow
def test_concurrent_planning_threads_leave_model_loading_intact():
    # Regression: three threads loading the library planner's embedder at once used to leave
    # transformers' meta-device patch behind, so the next load_lm() failed. A fresh process keeps
    # the global state of this test apart from the rest of the suite.
    code = (
        "import threading\n"
        "from selfsteer.planners.load import load_planner\n"
        "lib = load_planner('library')\n"
        "ts = [threading.Thread(target=lib.plan, args=('Write a sentence with exactly 5 words.',)) for _ in range(3)]\n"
        "[t.start() for t in ts]; [t.join() for t in ts]\n"
        "from selfsteer.smc import load_lm\n"
        "print('device', next(load_lm().model.parameters()).device)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert "device cpu" in out.stdout, out.stderr[-2000:]


@pytest.mark.slow
def test_cached_library_plans_must_be_what_the_library_offers(tmp_path):
    # A library plan runs in-process, so one read from the cache (a file anyone could have
    # written) is reused only if the library itself makes that very plan for the task.
    from selfsteer.planners.library import LibraryPlanner
    from selfsteer.planners.solve import _library_offers

    task = "Write a product code that matches the regular expression `[A-Z]{3}-[0-9]{4}`."
    library = LibraryPlanner()
    real = library.plan(task)
    forged = Plan(**{**real.to_dict(), "params": {**real.params, "pattern": "(a+)+$"}})
    renamed = Plan(**{**real.to_dict(), "program_name": "no_such_program"})
    assert _library_offers(real, task, library)
    assert not _library_offers(forged, task, library) and not _library_offers(renamed, task, library)
    assert _library_offers(Plan(source="x", class_name="P"), task, library)  # LM plans are re-validated instead
