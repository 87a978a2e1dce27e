"""`selfsteer solve / plan / eval` end to end: a real HTTP planner server on 127.0.0.1, the
sandbox, the exact LM as follower, and the evaluation's worker pool and report."""

from __future__ import annotations

import json

import pytest
from chat_server import ScriptedChatServer
from test_planners_solve import CRASHES, GOOD

from selfsteer.cli.main import main
from selfsteer.planners.evaluate import EvalReport, TaskOutcome, read_tasks


def cli(server: ScriptedChatServer, tmp_path, *args: str) -> list[str]:
    return [*args, "--planner-url", server.url, "--planner-model", "scripted", "--follower", "exact",
            "--particles", "4", "--cache-dir", str(tmp_path / "cache")]


def test_solve_prints_answer_weight_and_check(tmp_path, capsys):
    with ScriptedChatServer([CRASHES, GOOD]) as server:
        code = main(cli(server, tmp_path, "solve", "a"))
    out, err = capsys.readouterr()
    assert code == 0
    assert "posterior weight: " in out and "check: passed" in out and "attempt 2" in out
    assert "[attempt 1] failed: program: ZeroDivisionError" in err and "[attempt 2] check passed" in err


def test_solve_scaling_flags(tmp_path, capsys):
    with ScriptedChatServer([GOOD]) as server:
        code = main(cli(server, tmp_path, "solve", "a", "--vote", "majority", "--explore", "1", "--trust"))
    out = capsys.readouterr().out
    assert code == 0 and "vote (majority): " in out and "trust: isotropy " in out
    assert main(["solve", "a", "--explore", "-1", "--planner", "library"]) == 2
    assert "explore must be >= 0" in capsys.readouterr().err


def test_solve_json_and_failure_exit_code(tmp_path, capsys):
    with ScriptedChatServer([CRASHES]) as server:
        code = main(["solve", "a", "--json", "--attempts", "1", "--planner-url", server.url, "--planner-model", "m",
                     "--follower", "exact", "--no-cache"])
    data = json.loads(capsys.readouterr().out)
    assert code == 1 and data["check_passed"] is False and data["attempts"][0]["error_kind"] == "program"


def test_plan_prints_the_program(tmp_path, capsys):
    with ScriptedChatServer([GOOD]) as server:
        code = main(["plan", "a", "--planner-url", server.url, "--planner-model", "m"])
    out = capsys.readouterr().out
    assert code == 0 and out.startswith("# NoB (lm)") and "class NoB(TextModel)" in out


def test_plan_without_a_model_names_the_setting(capsys, monkeypatch):
    monkeypatch.delenv("SELFSTEER_PLANNER_MODEL", raising=False)
    monkeypatch.delenv("OPENAI_MODEL", raising=False)
    assert main(["plan", "a", "--planner", "openai"]) == 1
    assert "SELFSTEER_PLANNER_MODEL" in capsys.readouterr().err


def test_eval_runs_tasks_concurrently_and_reports_side_by_side(tmp_path, capsys):
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text("\n".join(json.dumps({"task": "a", "family": f"f{i}"}) for i in range(3)) + "\n")
    with ScriptedChatServer([GOOD] * 3) as server:
        code = main(["eval", str(tasks), "--jobs", "3", "--planner-url", server.url, "--planner-model", "m",
                     "--follower", "exact", "--particles", "4", "--no-cache", "--out", str(tmp_path / "r.json"),
                     "--plot", str(tmp_path / "r.png"), "--judge", "none"])
    out = capsys.readouterr().out
    assert code == 0 and "selfsteer" in out and "follower alone" in out and "weighted pass@1" in out
    assert "coherency: not judged" in out
    report = json.loads((tmp_path / "r.json").read_text())
    assert len(report["tasks"]) == 3 and report["totals"]["selfsteer"]["pass_rate"] == 1.0
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"


def test_read_tasks_names_the_bad_line(tmp_path):
    bad = tmp_path / "t.jsonl"
    bad.write_text('{"task": "ok"}\n\n{"no_task": 1}\n')
    try:
        read_tasks(bad)
    except ValueError as e:
        assert ":3:" in str(e) and "'task'" in str(e)
    else:
        raise AssertionError("a line without 'task' must be rejected")


def test_report_totals_are_means_over_scored_tasks():
    def outcome(passed, weighted, b_passed, b_weighted):
        return TaskOutcome("t", None, "c", passed, weighted, 2.0, 1, None, "x", b_passed, b_weighted, 1.0, "y")

    report = EvalReport("p", [outcome(True, 0.9, False, 0.25), outcome(False, 0.1, None, None)])
    totals = report.totals()
    assert totals["selfsteer"] == {"pass_rate": 0.5, "weighted_pass@1": 0.5, "seconds_per_task": 2.0}
    assert totals["follower alone"] == {"pass_rate": 0.0, "weighted_pass@1": 0.25, "seconds_per_task": 1.0}
    assert "n/a" not in report.table()


def test_report_with_a_judge_shows_coherency_per_system_and_plots_it(tmp_path):
    from selfsteer.planners.coherence import Coherence

    def outcome(family, passed, own, alone):
        return TaskOutcome("t", family, "c", passed, float(passed), 2.0, 1, None, "x", False, 0.0, 1.0, "y",
                           Coherence(own, 1.0, -2.0, 5, 1.0, True), Coherence(alone, 1.0, -3.0, 5, 0.5, False))

    report = EvalReport("p", [outcome("a", True, 6.0, 8.0), outcome("b", False, 4.0, 9.0)], judge="judge-lm")
    totals = report.totals()
    assert totals["selfsteer"]["coherency"] == 5.0 and totals["follower alone"]["coherency"] == 8.5
    assert totals["follower alone"]["word_share"] == 0.5 and totals["selfsteer"]["all_words_known"] == 1.0
    assert report.by_family()["b"]["selfsteer"]["coherency"] == 4.0
    assert "coherency" in report.table() and "judge: judge-lm" in report.table()
    assert report.plot(tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads(report.to_json())["totals"]["selfsteer"]["loglik_per_token"] == -2.0


def test_eval_judge_that_is_not_downloaded_is_a_clear_error(tmp_path, monkeypatch, capsys):
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(json.dumps({"task": "a"}) + "\n")
    monkeypatch.setenv("SELFSTEER_CACHE", str(tmp_path))  # an empty cache: the judge is "not downloaded"
    assert main(["eval", str(tasks), "--judge", "qwen-coder", "--follower", "exact"]) == 2
    assert "selfsteer planner download qwen-coder" in capsys.readouterr().err


def test_qwen_planner_is_never_downloaded_implicitly(tmp_path, monkeypatch, capsys):

    from selfsteer.planners.load import load_planner
    from selfsteer.smc.lm.loading import ModelNotFound

    monkeypatch.setenv("SELFSTEER_CACHE", str(tmp_path))  # an empty cache: the model is "not downloaded"
    with pytest.raises(ModelNotFound, match="selfsteer planner download qwen-coder"):
        load_planner("qwen-coder")
    assert not any(tmp_path.rglob("*.gguf"))
    assert main(["planner", "list"]) == 0
    assert "not downloaded: selfsteer planner download qwen-coder" in capsys.readouterr().out
