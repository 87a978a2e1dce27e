"""The profiling benchmark on the tiny random Llama: the parts it names add up, and the host line
is the run minus the device's work."""

from __future__ import annotations

import re

from benchmarks import profile_smc


def seconds(report: str, label: str) -> float:
    line = next(line for line in report.splitlines() if line.startswith(label))
    return float(line[60:].split()[0])


def test_a_tiny_free_run_splits_device_and_host_work():
    report = profile_smc.profile("free", model="tiny", particles=4, tokens=6, threads=1, seed=0, top=5)
    wall = float(re.search(r"wall ([0-9.]+) s", report).group(1))
    forward = seconds(report, "  model forward")
    draws = seconds(report, "    token draws on the device")
    host = seconds(report, "host work")
    assert forward > 0 and draws > 0  # token-level steps draw on the device
    assert 0 < host < wall and host <= wall - forward - draws + 0.02  # printed to 0.01 s
    assert "us per particle per token" in report
