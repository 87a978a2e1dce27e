"""The profiling benchmark on the tiny random Llama: token-level steps draw on the device, and the
host line is the run minus the device's work."""

from __future__ import annotations

from benchmarks import profile_smc


def test_a_tiny_free_run_splits_device_and_host_work(one_thread):
    p = profile_smc.profile("free", model="tiny", particles=4, tokens=6, threads=1, seed=0, top=5)
    wall = p.record.wall_s
    forward = p.parts["  model forward (TransformersLM._forward)"]
    draws = p.parts["    token draws on the device (sampling.draw_tokens)"]
    assert p.record.n_tokens == 4 * 6
    assert forward > 0 and draws > 0  # token-level steps draw on the device
    # host = wall - forward - draws - the backend's log-softmax (>= 0); 1e-9 s absorbs float rounding
    assert 0 < p.host_s <= wall - forward - draws + 1e-9
    report = p.report()
    assert "host work" in report and "us per particle per token" in report and "Top functions" in report
