"""Retrieval of logs: nearest first (checked against brute force), filters, and the MiniLM embedder."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from selfsteer.smc.scaling import LogEntry, LogMemory, nearest_logs


def entry(i, vec, outcome="correct", created=0.0):
    return LogEntry(f"id{i}", f"task {i}", "p", "r", outcome, np.asarray(vec, dtype=np.float32), created=created)


nonzero = arrays(np.float64, 3, elements=st.floats(-1, 1, allow_nan=False)).filter(lambda v: np.linalg.norm(v) > 1e-2)


@settings(max_examples=60)
@given(st.lists(nonzero, min_size=1, max_size=10), nonzero, st.integers(1, 12))
def test_nearest_logs_come_first(vectors, query, k):
    entries = [entry(i, v, created=float(i)) for i, v in enumerate(vectors)]
    found = nearest_logs(entries, query, k)
    cos = [float(np.dot(v, query) / np.linalg.norm(v) / np.linalg.norm(query)) for v in vectors]
    assert len(found) == min(k, len(vectors))
    sims = [s for _, s in found]
    assert sims == sorted(sims, reverse=True)
    assert sims[0] == pytest.approx(max(cos), abs=1e-5)
    for e, s in found:
        assert s == pytest.approx(cos[int(e.id[2:])], abs=1e-5)
    kept = {e.id for e, _ in found}
    assert all(c <= min(sims) + 1e-5 for i, c in enumerate(cos) if f"id{i}" not in kept)


def test_filters_by_outcome_and_embedding_size():
    entries = [entry(0, [1, 0, 0], "wrong"), entry(1, [0.9, 0.1, 0], "correct"), entry(2, [1, 0], "correct"),
               entry(3, [0, 1, 0], "unverified")]
    q = np.array([1.0, 0.0, 0.0])
    assert [e.id for e, _ in nearest_logs(entries, q, 5)] == ["id0", "id1", "id3"]
    assert [e.id for e, _ in nearest_logs(entries, q, 5, outcomes={"correct"})] == ["id1"]
    assert nearest_logs(entries, q, 0) == []
    with pytest.raises(ValueError, match="k must"):
        nearest_logs(entries, q, -1)


def test_minilm_retrieves_the_most_similar_task(tmp_path, exact_lm):
    memory = LogMemory(tmp_path, k=2, outcomes=None)
    for task in ["How many legs does a spider have?", "What is 7 + 5?", "Name the capital of France.",
                 "Translate 'cat' into French."]:
        memory.record(exact_lm, task, task, "r", "unverified")
    found = memory.retrieve("What is 8 + 6?")
    assert [e.task for e, _ in found][0] == "What is 7 + 5?"
    assert memory.retrieve("Which city is the capital of France?")[0][0].task == "Name the capital of France."
