"""`benchmarks.gpu_throughput` at its tiniest, on CPU, so the GPU benchmark runs when a GPU session
needs it. Checks bookkeeping (every system ran, token counts, ratios), never timings."""

from __future__ import annotations

import json

from benchmarks.gpu_throughput import main


def test_tiny_cpu_run_writes_consistent_json(tmp_path, one_thread):
    n, t = 4, 8
    main(
        [
            "--config",
            "tiny",
            "--particles",
            str(n),
            "--tokens",
            str(t),
            "--device",
            "cpu",
            "--out",
            str(tmp_path),
        ]
    )
    summary = json.loads((tmp_path / "gpu_throughput.json").read_text())
    assert set(summary["systems"]) == {"generate", "selfsteer", "selfsteer-chunk"}
    for name, r in summary["systems"].items():
        assert r["n_tokens"] == n * t, name  # EOS is disallowed: exactly T tokens per sequence
        assert len(r["walls_s"]) == 3 and r["wall_s"] > 0 and r["tokens_per_s"] > 0
        assert r["peak_memory_gib"] is None  # measured on CUDA only
    assert set(summary["ratios_vs_generate"]) == {"selfsteer", "selfsteer-chunk"}
    assert all(ratio > 0 for ratio in summary["ratios_vs_generate"].values())
    assert summary["device_name"] == "cpu" and summary["dtype"] == "float32"
    assert (summary["n_particles"], summary["max_tokens"], summary["config"]) == (n, t, "tiny")
    assert 0 < summary["n_parameters"] < 10_000_000
