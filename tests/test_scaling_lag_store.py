"""The LAG log store on real files: restarts, eviction, corruption, concurrent writer processes."""

import os
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pytest
import torch

from selfsteer.smc.scaling import CorruptLogWarning, LogKV, LogStore


def fake_kv(n_tokens: int, seed: int = 0) -> LogKV:
    """Small random tensors shaped like a 2-layer model's KV (the store does not care what they hold)."""
    g = torch.Generator().manual_seed(seed)
    keys = [torch.randn(1, 2, n_tokens, 4, generator=g) for _ in range(2)]
    values = [torch.randn(1, 2, n_tokens, 4, generator=g) for _ in range(2)]
    return LogKV(list(range(n_tokens)), keys, values, torch.randn(10, generator=g))


def add(store, i, kv=None, outcome="correct"):
    return store.add(f"task {i}", f"prompt {i}", f"response {i}", outcome, np.eye(4)[i % 4], kv=kv, model="m")


def test_entries_and_tensors_survive_a_restart(tmp_path):
    kv = fake_kv(5)
    a = add(LogStore(tmp_path), 0, kv)
    add(LogStore(tmp_path), 1)
    reopened = LogStore(tmp_path)
    entries = reopened.entries()
    assert [e.task for e in entries] == ["task 0", "task 1"]
    first = entries[0]
    assert (first.id, first.outcome, first.has_kv, first.model) == (a.id, "correct", True, "m")
    assert np.array_equal(first.embedding, np.eye(4)[0])
    loaded = reopened.load_kv(first)
    assert loaded.token_ids == kv.token_ids
    assert all(torch.equal(x, y) for x, y in zip(loaded.keys + loaded.values, kv.keys + kv.values, strict=True))
    assert reopened.load_kv(entries[1]) is None  # stored without KV
    assert not list(tmp_path.glob(".*.tmp*"))


def test_size_is_bounded_and_eviction_is_least_recently_used(tmp_path):
    probe = LogStore(tmp_path / "probe")
    add(probe, 0, fake_kv(50))
    one = sum(p.stat().st_size for p in (tmp_path / "probe").glob("*") if p.suffix in (".json", ".kv"))
    store = LogStore(tmp_path / "s", max_bytes=int(3.5 * one))
    e0, e1 = add(store, 0, fake_kv(50)), add(store, 1, fake_kv(50))
    time.sleep(0.05)
    add(store, 2, fake_kv(50))
    time.sleep(0.05)
    store.touch(e0)  # e0 is now more recently used than e1
    time.sleep(0.05)
    add(store, 3, fake_kv(50))
    kept = {e.task for e in store.entries()}
    assert kept == {"task 0", "task 2", "task 3"} and e1.id not in {e.id for e in store.entries()}
    total = sum(p.stat().st_size for p in (tmp_path / "s").glob("*") if p.suffix in (".json", ".kv"))
    assert total <= store.max_bytes
    with pytest.raises(ValueError, match="max_bytes"):
        LogStore(tmp_path / "tiny", max_bytes=100).add("t", "p", "r", "correct", np.ones(2), kv=fake_kv(50))


def test_corrupted_entries_are_skipped_with_a_warning(tmp_path):
    store = LogStore(tmp_path)
    good, bad_json, bad_kv, gone_kv = (add(store, i, fake_kv(4, seed=i)) for i in range(4))
    (tmp_path / f"{bad_json.id}.json").write_text("{not json")
    data = (tmp_path / f"{bad_kv.id}.kv").read_bytes()
    (tmp_path / f"{bad_kv.id}.kv").write_bytes(data[: len(data) // 2])
    os.remove(tmp_path / f"{gone_kv.id}.kv")
    (tmp_path / "garbage.json").write_bytes(b"\xff\xfe\x00")
    fresh = LogStore(tmp_path)
    with pytest.warns(CorruptLogWarning) as caught:
        entries = fresh.entries()
    assert {e.id for e in entries} == {good.id, bad_kv.id, gone_kv.id}
    assert len(caught) == 2  # the bad JSON and the garbage file
    by_id = {e.id: e for e in entries}
    with pytest.warns(CorruptLogWarning, match="checksum"):
        assert fresh.load_kv(by_id[bad_kv.id]) is None
    with pytest.warns(CorruptLogWarning, match="missing"):
        assert fresh.load_kv(by_id[gone_kv.id]) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fresh.load_kv(by_id[good.id]) is not None
        fresh.entries()  # each bad file warns once


WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    import torch
    from selfsteer.smc.scaling import LogKV, LogStore

    store = LogStore(sys.argv[1], max_bytes=int(sys.argv[3]))
    for i in range(12):
        kv = LogKV(list(range(20)), [torch.randn(1, 2, 20, 4)], [torch.randn(1, 2, 20, 4)], torch.randn(8))
        store.add(f"writer {sys.argv[2]} log {i}", "p", "r", "correct", np.random.rand(8), kv=kv)
        store.entries()
    """
)


def test_concurrent_writer_processes_keep_the_store_consistent_and_bounded(tmp_path):
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    root = tmp_path / "store"
    bound = 40_000  # a few entries' worth: writers must evict each other's logs
    procs = [subprocess.Popen([sys.executable, str(script), str(root), str(w), str(bound)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for w in range(3)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
    store = LogStore(root, max_bytes=bound)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no entry may be corrupted
        entries = store.entries()
        assert entries and all(store.load_kv(e) is not None for e in entries)
    files = [p for p in root.iterdir() if p.name != ".lock"]
    assert sum(p.stat().st_size for p in files) <= bound
    assert {p.suffix for p in files} <= {".json", ".kv"}
    assert len(list(root.glob("*.json"))) == len(list(root.glob("*.kv"))) == len(entries)
