"""The benchmark harness (benchmarks/) at its tiniest size, so it does not rot.

These tests check behaviour and bookkeeping (token counts, the shared checker, targets' pass/fail
logic, files written), never timings. Run from the repository root (``python -m pytest``), which
puts the ``benchmarks`` package on the path.
"""

from __future__ import annotations

import importlib.util
import json
import math

import pytest

from benchmarks import memory, targets
from benchmarks.harness import Harness
from benchmarks.run import merge_previous, parse_args, run, write
from benchmarks.sizes import TINY
from benchmarks.systems import make_runners
from benchmarks.tasks import (
    Task,
    free_task,
    is_valid,
    long_prompt,
    no_e_paragraph_task,
    no_e_task,
    record_task,
)


def test_shared_checker_by_cases():
    no_e, free = no_e_task(), free_task()
    cases = {"A dog sleeps.": False, "A big dog barks.": True, "AN ODD PUP!": True, "ELK": False, "": False, "   ": False}
    for text, ok in cases.items():
        assert is_valid(no_e, text) is ok, text
        assert is_valid(no_e_paragraph_task(), text) is ok, text
    assert is_valid(no_e, None) is False
    assert is_valid(free, "anything, e included") is True
    assert is_valid(free, None) is False
    record = record_task()
    records = {
        '{"name": "Rex", "breed": "Border Collie", "age": 4}': True,
        ' {"name": "Rex", "breed": "Pug", "age": 12} ': True,  # surrounding space is not the record's
        '{"name": "rex", "breed": "Pug", "age": 1}': False,  # names are capitalised
        '{"name": "Rex", "breed": "Pug", "age": 100}': False,
        '{"name": "Rex", "breed": "Pug"}': False,
        '{"name": "Rex", "breed": "Pug", "age": 1} and more': False,
    }
    for text, ok in records.items():
        assert is_valid(record, text) is ok, text


def test_only_sentence_tasks_end_at_punctuation():
    assert no_e_task().ends_at_sentence and not no_e_paragraph_task().ends_at_sentence
    assert not record_task().ends_at_sentence and record_task().constrained and not free_task().constrained


def test_task_rejects_bad_settings():
    with pytest.raises(ValueError, match="choose one of"):
        Task("x", "p", 2, 4, "rhymes")
    with pytest.raises(ValueError, match=">= 1"):
        free_task(0, 4)
    with pytest.raises(ValueError, match="needs a pattern"):
        Task("x", "p", 2, 4, "regex")
    with pytest.raises(ValueError, match="needs a pattern"):
        Task("x", "p", 2, 4, "no_e", pattern="a+")


def test_long_prompt_is_just_long_enough():
    count = len  # one "token" per character keeps the arithmetic checkable
    text = long_prompt(count, 1000)
    assert count(text) >= 1000
    shorter = "\n\n".join(text.split("\n\n")[:-2]) + "\n\n" + text.split("\n\n")[-1]
    assert count(shorter) < 1000  # one section fewer would not reach the length


@pytest.mark.slow
def test_tiny_run_writes_consistent_summary(shared, tmp_path):
    args = parse_args(["--size", "tiny", "--suite", "foundation", "--threads", "1",
                       "--systems", "selfsteer,selfsteer-chunk,generate"])
    summary = run(args, shared)
    runs = summary["suites"]["foundation"]["runs"]
    assert {r["system"] for r in runs} == {"selfsteer", "selfsteer-chunk", "generate"}
    for r in runs:
        assert r["error"] is None
        assert len(r["outputs"]) == r["n_particles"]
        if r["task"] == "free":  # EOS is disallowed: every sequence has exactly max_tokens tokens
            assert r["n_tokens"] == r["n_particles"] * r["max_tokens"]
            assert r["n_valid"] == r["n_particles"]
        if r["task"].startswith("no_e") and r["system"] == "selfsteer":  # the constraint holds on every output
            assert all("e" not in out.lower() for out in r["outputs"])
        # forward passes, counted by a hook on the shared module, agree with what each system reports
        if r["system"] == "selfsteer":
            assert r["n_forward"] == r["extra"]["n_forward"] >= 1
        if r["system"] == "generate" and r["task"] == "free":  # one call per generated token
            assert r["n_forward"] == r["max_tokens"]
    ratio = summary["suites"]["foundation"]["ratios"]["free"]["generate"]["wall_vs_selfsteer"]
    rows = summary["suites"]["foundation"]["summary"]["free"]
    assert math.isclose(ratio, rows["generate"]["wall_s"] / rows["selfsteer"]["wall_s"])
    ids = {t["id"] for t in summary["targets"]}
    assert {"constrained_validity_vs_genlm[no_e]", "constrained_speed_vs_genlm[json_record]",
            "constrained_speed_vs_genlm[no_e_paragraph]", "free_vs_generate[selfsteer]"} <= ids
    assert {r["task"] for r in runs} == {"no_e", "no_e_paragraph", "json_record", "free"}
    assert all(not t["applies"] for t in summary["targets"])  # tiny is never the targets' configuration

    paths = write(summary, tmp_path)
    assert {p.name for p in paths} == {"summary.json", "summary.md", "foundation.png"}
    assert json.loads((tmp_path / "summary.json").read_text())["settings"]["size"] == "tiny"
    assert (tmp_path / "foundation.png").read_bytes()[:4] == b"\x89PNG"
    assert "| free | selfsteer |" in (tmp_path / "summary.md").read_text()
    no_e = summary["suites"]["foundation"]["summary"]["no_e"]["selfsteer"]
    assert math.isclose(no_e["s_per_forward"], no_e["wall_s"] / no_e["n_forward"])  # one repeat at tiny


@pytest.mark.slow
def test_sweep_skips_larger_points_after_the_budget(shared):
    runners, _ = make_runners(["selfsteer"], shared)
    tasks = [free_task(n, 2, name="free_particles") for n in (1, 2, 4)]
    records, skipped = Harness(runners).sweep(tasks, budget_s=0.0)  # every run exceeds a zero budget
    assert [r.n_particles for r in records] == [1]
    assert [s["n_particles"] for s in skipped] == [2, 4]
    assert "budget" in skipped[0]["reason"]


@pytest.mark.slow
@pytest.mark.parametrize("system", ["genlm-control", "llamppl"])
def test_competitor_runs_the_same_tasks(shared, system):
    if system == "llamppl" and importlib.util.find_spec("llamppl") is None:
        pytest.skip("llamppl is not installed (pip install llamppl==0.2.3)")
    runners, missing = make_runners([system], shared)
    assert not missing, missing
    runner = runners[0]
    free = runner.run(free_task(2, 3), seed=0)
    assert free.error is None
    assert free.n_tokens == 6 and free.n_valid == 2
    no_e = runner.run(no_e_task(2, 3), seed=0)
    assert no_e.error is None
    assert all("e" not in out.lower() for out in no_e.outputs)
    record = runner.run(record_task(2, 40), seed=0)
    if system == "llamppl":
        assert runner.supports(record_task()) is not None
    else:  # every finished record matches the pattern
        assert record.error is None
        assert record.n_valid == 2, record.outputs


@pytest.mark.slow
def test_selfsteer_writes_records_that_match(shared):
    runners, _ = make_runners(["selfsteer"], shared)
    record = runners[0].run(record_task(2, 40), seed=0)
    assert record.error is None
    assert record.n_valid == 2, record.outputs


@pytest.mark.slow
def test_memory_probe_in_a_fresh_process():
    point = memory.probe("selfsteer", 1, TINY, threads=1, device="cpu", seed=0, timeout_s=600)
    assert point.get("error") is None, point
    assert point["n_tokens"] == TINY.memory_new_tokens
    assert point["prompt_tokens"] >= TINY.memory_prompt_tokens
    assert point["max_rss_bytes"] >= point["run_peak_bytes"] > 0


def _memory_point(system, n, growth_mib):
    return {"system": system, "n_particles": n, "prompt_tokens": 1000, "kv_bytes_per_token": 2**20,
            "max_rss_bytes": 0, "run_peak_bytes": 0, "growth_bytes": int(growth_mib * 2**20)}


def test_targets_pass_and_fail_at_their_thresholds():
    def foundation(genlm_wall, free_wall, valid):
        row = {"wall_s": 1.0, "cpu_s": 1.0, "tokens_per_s": 1.0, "n_valid": valid}
        return {
            "tasks": [no_e_task().to_dict(), free_task().to_dict()],
            "summary": {
                "no_e": {"selfsteer": row, "genlm-control": {**row, "wall_s": genlm_wall, "n_valid": 8}},
                "free": {"selfsteer": {**row, "wall_s": free_wall}, "generate": row},
            },
        }

    ok = {t["id"]: t["passed"] for t in targets.foundation_targets(foundation(3.0, 1.3, 8), True)}
    assert ok == {"constrained_speed_vs_genlm[no_e]": True, "constrained_validity_vs_genlm[no_e]": True,
                  "free_vs_generate[selfsteer]": True, "free_vs_generate[selfsteer-chunk]": None}
    bad = {t["id"]: t["passed"] for t in targets.foundation_targets(foundation(2.99, 1.31, 7), True)}
    assert bad["constrained_speed_vs_genlm[no_e]"] is False
    assert bad["constrained_validity_vs_genlm[no_e]"] is False
    assert bad["free_vs_generate[selfsteer]"] is False
    assert targets.gpu_target(None, "cpu", True)["passed"] is None

    points = [_memory_point("selfsteer", 1, 10), _memory_point("selfsteer", 5, 30)]
    summary = memory.summarise(points, TINY)
    assert summary["selfsteer"]["growth_over_first_mib"] == pytest.approx([0, 20])
    assert summary["selfsteer"]["prompt_copies_kv_mib"][-1] == pytest.approx(4 * 1000)  # (5 - 1) copies x 1000 tokens x 1 MiB
    assert targets.memory_target({"summary": summary}, True)["passed"] is True  # 20 MiB << 4000 MiB


def test_cli_names_the_valid_systems(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--systems", "selfsteer,vllm-magic"])
    assert "genlm-control" in capsys.readouterr().err


def _summary(size, suites, started, device="cpu"):
    machine = {"cpu": "test cpu", "cores": 2, "torch_threads": 1, "device": device}
    return {"command": f"run at {started}", "started": started, "machine": machine, "settings": {"size": size},
            "suite_runs": {s: {"started": started, "command": f"run at {started}", "machine": machine} for s in suites},
            "suites": dict(suites), "targets": []}


def test_update_keeps_the_suites_a_run_left_out():
    points = [_memory_point("selfsteer", 1, 10), _memory_point("selfsteer", 5, 30)]
    memory_results = {"summary": memory.summarise(points, TINY), "points": points}
    earlier = _summary("full", {"memory": memory_results, "foundation": {"old": True}}, "2026-01-01")
    earlier.pop("suite_runs")  # summaries written before suites recorded their own runs
    later = _summary("full", {"foundation": {"tasks": [], "summary": {}}}, "2026-02-02")
    merged = merge_previous(later, earlier)
    assert merged["suites"]["foundation"] == {"tasks": [], "summary": {}}  # this run's results win
    assert merged["suites"]["memory"] is memory_results
    assert merged["suite_runs"]["memory"]["started"] == "2026-01-01"
    assert merged["suite_runs"]["foundation"]["started"] == "2026-02-02"
    by_id = {t["id"]: t for t in merged["targets"]}  # re-evaluated on the merged suites
    assert by_id["memory_shared_prompt"]["passed"] is True
    assert not any(i.startswith("constrained_") for i in by_id)  # this run's foundation had no such tasks
    with pytest.raises(SystemExit, match="--size quick"):
        merge_previous(_summary("full", {}, "2026-02-02"), _summary("quick", {}, "2026-01-01"))


def test_self_steering_report_carries_coherency_per_system_and_combines(tmp_path):
    from benchmarks import bench_self_steering as bench

    def record(i, family, passed, own, alone):
        c = lambda x: {"coherency": x, "judge_mass": 1.0, "loglik_per_token": -x, "n_tokens": 4,  # noqa: E731
                       "word_share": x / 10, "all_words_known": x == 10}
        return {"id": f"t{i}", "family": family, "task": "t", "constraints": {},
                "selfsteer": {"passed": passed, "weighted_pass": float(passed), "seconds": 1.0, "planned_as_expected": None,
                              "program": "p", "answer": "An answer.", "coherence": c(own)},
                "baseline": {"pass_fraction": 0.5, "pass_at_n": True, "seconds": 2.0, "outputs": ["x" * 300], "coherence": c(alone)}}

    rows = [record(0, "a", True, 4.0, 8.0), record(1, "b", False, 6.0, 10.0)]
    report = bench.summarize_report({"settings": {"particles": 2, "judge": "j"}}, rows)
    assert report["totals"]["selfsteer"]["coherency"] == 5.0 and report["totals"]["selfsteer"]["pass_rate"] == 0.5
    assert report["totals"]["follower_alone"]["word_share"] == 0.9
    assert report["totals"]["follower_alone"]["all_words_known"] == 0.5
    assert report["by_family"]["b"]["selfsteer"]["coherency"] == 6.0
    assert report["totals"]["selfsteer"]["planned_as_expected"] is None  # no task named its program
    path = tmp_path / "judged.json"
    path.write_text(json.dumps(report))
    bench.combine({"set": str(path)}, tmp_path / "summary.json")
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["set"]["tasks"][1]["alone_coherency"] == 10.0 and len(summary["set"]["tasks"][1]["alone_answer"]) == 160
    assert (tmp_path / "summary.png").read_bytes()[:4] == b"\x89PNG"


def test_fluency_summary_and_plot(tmp_path):
    from benchmarks.bench_fluency import fluency, plot, summary
    from selfsteer.planners.coherence import WordList

    words_file = tmp_path / "words"
    words_file.write_text("the\ncat\nsat\n")
    rows = [{"system": "smc-1", "answer": "The cat sat.", "passed": True, "time_s": 1.0},
            {"system": "smc-1", "answer": "The cat blorped.", "passed": False, "time_s": 3.0},
            {"system": "best-of-n", "answer": None, "passed": False, "time_s": 2.0}]
    for row in rows:
        fluency(WordList(words_file), row)
    assert rows[1]["unknown_words"] == ["blorped"] and rows[2]["word_share"] is None
    table = summary(rows)
    assert table["smc-1"]["pass_rate"] == 0.5 and table["smc-1"]["independent_pass_rate"] is None and table["smc-1"]["time_s"] == 2.0
    assert math.isclose(table["smc-1"]["word_share"], (1 + 2 / 3) / 2) and table["smc-1"]["all_words_known"] == 0.5
    assert table["best-of-n"]["word_share"] is None and table["best-of-n"]["coherency"] is None
    assert plot(table, tmp_path / "f.png").stat().st_size > 0
