"""``selfsteer train`` as a real subprocess: outputs, config errors, and kill-and-resume equivalence."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from tiny_lm import save_tiny_model

STEPS = 10
KILL_AFTER = 4  # SIGKILL once the checkpoint of this step is complete


def cli(*args: str, **kwargs) -> list[str]:
    return [sys.executable, "-m", "selfsteer.cli.main", "train", *args]


def env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


def write_config(path: Path, model_dir: Path, out_dir: Path, **changes) -> Path:
    config = {
        "out_dir": str(out_dir), "seed": 3,
        "model": {"name": str(model_dir)},
        "task": {"name": "facts", "n_train": 12, "n_eval": 2},
        # non-numeric answers: a random model's first line is always an answer, so counts grow
        "objective": {"name": "exploration", "variant": "ucb", "c": 0.5},
        "sampling": {"group_size": 4, "questions_per_step": 2, "max_tokens": 6, "prompt": "qa"},
        "optim": {"steps": STEPS, "lr": 1.0e-2, "grad_accum": 2, "schedule": "cosine", "warmup_steps": 2},
        "log": {"checkpoint_every": 2, "eval_every": 6, "eval_questions": 2, "eval_samples": 2, "progress": False},
    }
    for key, value in changes.items():
        section, name = key.split(".")
        config[section][name] = value
    path.write_text(yaml.safe_dump(config))
    return path


def test_check_and_config_errors(tmp_path, tiny_dir):
    cfg = write_config(tmp_path / "c.yaml", tiny_dir, tmp_path / "out")
    out = subprocess.run(cli(str(cfg), "--check", "--set", "optim.lr=3.0e-4"), capture_output=True, text=True, env=env())
    assert out.returncode == 0 and yaml.safe_load(out.stdout)["optim"]["lr"] == 3e-4
    bad = write_config(tmp_path / "bad.yaml", tiny_dir, tmp_path / "out", **{"optim.lr": "fast"})
    out = subprocess.run(cli(str(bad)), capture_output=True, text=True, env=env())
    assert out.returncode == 2
    assert "optim.lr: expected a number, got 'fast'" in out.stderr
    out = subprocess.run(cli(str(cfg), "--resume"), capture_output=True, text=True, env=env())
    assert out.returncode == 2 and "nothing to resume" in out.stderr


def load_final(out_dir: Path) -> dict:
    return torch.load(out_dir / "checkpoints" / f"step-{STEPS:06d}" / "state.pt", weights_only=False)


def comparable_metrics(out_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.startswith("time_")} for r in rows]


def assert_same_tensors(a, b, where=""):
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_same_tensors(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same_tensors(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


@pytest.mark.slow
def test_killed_and_resumed_run_ends_like_an_uninterrupted_one(tmp_path, tiny_dir):
    full, broken = tmp_path / "full", tmp_path / "broken"
    cfg_full = write_config(tmp_path / "full.yaml", tiny_dir, full)
    cfg_broken = write_config(tmp_path / "broken.yaml", tiny_dir, broken)
    done = subprocess.run(cli(str(cfg_full)), capture_output=True, text=True, env=env(), timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "trained 10 steps" in done.stdout

    proc = subprocess.Popen(cli(str(cfg_broken)), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env())
    latest = broken / "checkpoints" / "latest"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        if latest.is_file() and int(latest.read_text().strip().split("-")[1]) >= KILL_AFTER:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    killed_at = int(latest.read_text().strip().split("-")[1])
    assert KILL_AFTER <= killed_at < STEPS
    assert not (broken / "final").exists()

    resumed = subprocess.run(cli(str(cfg_broken), "--resume"), capture_output=True, text=True, env=env(), timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]

    a, b = load_final(full), load_final(broken)
    assert a["step"] == b["step"] == STEPS
    assert a["states"] == b["states"] and any(s.get("answer_counts") for s in a["states"].values())
    assert_same_tensors(a["trainable"], b["trainable"], "weights")  # bit for bit
    assert_same_tensors(a["optimizer"], b["optimizer"], "optimizer")
    assert torch.equal(a["torch_rng"], b["torch_rng"])
    assert comparable_metrics(full) == comparable_metrics(broken)
    assert (broken / "tensorboard").is_dir() and any((broken / "tensorboard").iterdir())
    assert (broken / "final" / "config.json").is_file()
