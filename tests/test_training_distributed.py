"""Data-parallel training: two torchrun processes (gloo, CPU) against one process, same global batch.

The tiny random Llama runs GRPO on the coin task (`dp_train_run.py`): 4 questions x 4 samples
per step. Two ranks each take half of every update and sum gradients; one process takes all of
it. Their weights agree to 1e-4 (measured: 3.5e-6 after two steps of lr 1e-2, which move the
weights by 1e-2 each: only the summation order differs), rollouts and rewards agree exactly, and
a two-process run killed after step 1 and resumed ends where the one-process run does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

RUN = Path(__file__).resolve().parent / "dp_train_run.py"
TOLERANCE = 1e-4


def launch(out: Path, steps: int, *, procs: int, resume: bool = False) -> None:
    cmd = [sys.executable, str(RUN), str(out), str(steps)] + (["--resume"] if resume else [])
    if procs > 1:
        cmd[1:1] = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]


def weights(out: Path, step: int) -> dict[str, torch.Tensor]:
    return torch.load(out / "checkpoints" / f"step-{step:06d}" / "state.pt", weights_only=False)["trainable"]


def train_records(out: Path) -> list[dict]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r["kind"] == "train"]


@pytest.mark.slow
def test_two_processes_reach_the_weights_of_one_and_resume(tmp_path):
    launch(tmp_path / "one", 2, procs=1)
    launch(tmp_path / "two", 1, procs=2)
    after_one = weights(tmp_path / "two", 1)
    launch(tmp_path / "two", 2, procs=2, resume=True)
    for step, two in ((1, after_one), (2, weights(tmp_path / "two", 2))):
        one = weights(tmp_path / "one", step)
        assert one.keys() == two.keys()
        gap = max((one[k] - two[k]).abs().max().item() for k in one)
        moved = max((one[k] - weights(tmp_path / "one", step - 1)[k]).abs().max().item() for k in one) if step > 1 else None
        assert gap < TOLERANCE, f"step {step}: weights differ by {gap}"
        assert moved is None or moved > 100 * TOLERANCE  # the steps moved the weights far more than the gap
    one, two = train_records(tmp_path / "one"), train_records(tmp_path / "two")
    assert [r["step"] for r in two] == [1, 2]  # rank 0 alone logs, and the resumed run drops nothing
    for a, b in zip(one, two, strict=True):
        assert a["reward"] == b["reward"] and a["completion_tokens"] == b["completion_tokens"]
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-4)  # the summed gradient is the whole step's
        assert a["policy_loss"] == pytest.approx(b["policy_loss"], abs=1e-6)
