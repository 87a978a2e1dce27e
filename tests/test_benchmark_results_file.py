"""`benchmarks.results_file`: result JSON that round-trips exactly and puts one record on a line."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.results_file import dumps, write

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=8), inner, max_size=6), max_leaves=40)


@given(values)
@settings(max_examples=200, deadline=None)
def test_round_trips_exactly(value):
    assert json.loads(dumps(value)) == value


def test_one_line_per_run_record(tmp_path):
    runs = [{"system": "selfsteer", "repeat": i, "wall_s": 0.5 * i, "outputs": ["a b c"] * 3} for i in range(1000)]
    summary = {"settings": {"size": "full", "threads": 1}, "suites": {"foundation": {"runs": runs}}}
    path = write(tmp_path / "summary.json", summary)
    lines = path.read_text().splitlines()
    assert json.loads(path.read_text()) == summary
    assert len(lines) < 1020  # one line per run plus the enclosing structure
    assert sum('"system": "selfsteer"' in line for line in lines) == 1000
    assert len(json.dumps(summary, indent=2).splitlines()) > 8 * len(lines)
