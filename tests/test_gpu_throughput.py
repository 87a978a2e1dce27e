"""`benchmarks.gpu_throughput` at its tiniest, on CPU, so the GPU benchmark runs when a GPU session
needs it. Checks bookkeeping (every system ran, token counts, ratios, the target's reading, the
plot), never timings."""

from __future__ import annotations

import json

from PIL import Image

from benchmarks.gpu_throughput import main


def test_tiny_cpu_run_writes_consistent_json(tmp_path, one_thread):
    ns, t = (2, 4), 8
    main(["--config", "tiny", "--particles", *map(str, ns), "--tokens", str(t), "--device", "cpu",
          "--out", str(tmp_path)])
    summary = json.loads((tmp_path / "gpu_throughput.json").read_text())
    assert [run["n_particles"] for run in summary["runs"]] == list(ns)
    for run in summary["runs"]:
        n = run["n_particles"]
        assert set(run["systems"]) == {"generate", "selfsteer", "selfsteer-chunk"}
        for name, r in run["systems"].items():
            assert r["n_tokens"] == n * t, name  # EOS is disallowed: exactly T tokens per sequence
            assert len(r["walls_s"]) == 3 and r["wall_s"] > 0 and r["tokens_per_s"] > 0
            assert r["peak_memory_gib"] is None  # measured on CUDA only
        assert set(run["ratios_vs_generate"]) == {"selfsteer", "selfsteer-chunk"}
        assert all(ratio > 0 for ratio in run["ratios_vs_generate"].values())
    assert summary["target"] == {"n_particles": 64, "ratio": None, "passed": None}  # N=64 not run
    assert summary["device_name"] == "cpu" and summary["dtype"] == "float32"
    assert (summary["max_tokens"], summary["config"]) == (t, "tiny")
    assert summary["prompt_tokens"] > 10
    assert 0 < summary["n_parameters"] < 10_000_000
    assert Image.open(tmp_path / "gpu_throughput.png").size[0] > 500


def test_long_prompt_and_target_at_64(tmp_path, one_thread):
    main(["--config", "tiny", "--particles", "64", "--tokens", "2", "--repeats", "1", "--device", "cpu",
          "--prompt-tokens", "300", "--out", str(tmp_path)])
    summary = json.loads((tmp_path / "gpu_throughput.json").read_text())
    assert summary["prompt_tokens"] >= 300
    ratio = summary["runs"][0]["ratios_vs_generate"]["selfsteer"]
    assert summary["target"] == {"n_particles": 64, "ratio": ratio, "passed": ratio >= 0.8}
