"""Every tutorial runs top to bottom at tiny scale (SELFSTEER_FAST=1), so none can rot: inside a
running event loop with top-level await, as Jupyter runs its cells (`tutorials/run.py`)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

TUTORIALS = sorted((Path(__file__).parent.parent / "tutorials").glob("*/tutorial.py"))
RUNNER = Path(__file__).parent.parent / "tutorials" / "run.py"


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.parent.name for p in TUTORIALS])
def test_tutorial_runs(path, tmp_path):
    env = {**os.environ, "SELFSTEER_FAST": "1", "MPLBACKEND": "Agg", "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, str(RUNNER), str(path)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, f"{path} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"


def test_there_are_tutorials():
    assert {p.parent.name for p in TUTORIALS} >= {"01_first_program"}
