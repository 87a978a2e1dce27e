"""The forward-overhead benchmark on the bundled model: equal work checked, ratios from the raw times, files written."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import forward_overhead


def test_a_small_run_reports_what_it_timed(shared, tmp_path):
    args = forward_overhead.parse_args(["--batches", "1,3", "--repeats", "3", "--context", "4", "--out", str(tmp_path)])
    report = forward_overhead.run(args, shared)

    assert shared.lm._shared_prefix_attention  # the backend's own setting is restored
    assert [r["batch"] for r in report["results"]] == [1, 3]
    assert report["prompt_tokens"] == len(shared.chat_ids(forward_overhead.NO_E_PROMPT))
    assert report["variants"] == list(forward_overhead.VARIANTS)  # the CPU backend packs: plain-unpacked is timed too
    for r in report["results"]:
        assert r["max_logit_difference"] <= forward_overhead.LOGIT_TOLERANCE
        for variant in forward_overhead.VARIANTS:
            assert len(r["ms"][variant]) == 3 and min(r["ms"][variant]) > 0
            assert r["median_ms"][variant] == pytest.approx(np.median(r["ms"][variant]))
        assert set(r["ratio_to_plain"]) == {"selfsteer", "selfsteer-copied-prefix", "plain-unpacked"}
        for variant in r["ratio_to_plain"]:
            assert r["ratio_to_plain"][variant] == pytest.approx(r["median_ms"][variant] / r["median_ms"]["plain"])
            lo, hi = r["ratio_to_plain_ci90"][variant]
            assert 0 < lo <= hi

    paths = forward_overhead.write(report, tmp_path)
    assert json.loads(paths[0].read_text())["results"][1]["batch"] == 3
    assert paths[1].stat().st_size > 10_000
    assert "| 3 |" in forward_overhead.render(report)


def test_variants_that_compute_different_logits_are_not_timed(shared, monkeypatch):
    plain = forward_overhead.plain_step

    def shifted(*args, **kwargs):
        step = plain(*args, **kwargs)
        return lambda: step() + 1.0

    monkeypatch.setattr(forward_overhead, "plain_step", shifted)
    own = shared.lm.encode(" a dog")
    with pytest.raises(RuntimeError, match="disagree at batch 2"):
        forward_overhead.measure_batch(shared, shared.chat_ids("Hi"), own, 2, repeats=2)


def test_bad_arguments_are_named():
    with pytest.raises(SystemExit):
        forward_overhead.parse_args(["--batches", "0,4"])
