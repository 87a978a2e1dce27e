"""Resumable checkpoints: weights, optimiser, RNG states and per-question state (exploration
counts), written atomically.

A checkpoint is ``out_dir/checkpoints/step-000040/state.pt`` (everything needed to continue) plus
``question_state.json`` (the same per-question state, human-readable). ``out_dir/checkpoints/latest``
names the newest complete one; it is replaced with an atomic rename only after the checkpoint is
fully on disk, so a run killed at any moment resumes from a consistent state.

Only the trainable parameters are saved (all weights, or just the LoRA adapters); the frozen
parts are reloaded from the model source named in the config.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

FORMAT = 1


@dataclass
class Checkpoint:
    step: int  # number of completed training steps
    states: dict[str, dict]
    config: dict
    path: Path
    torch_rng: torch.Tensor
    python_rng: tuple

    def restore_rng(self) -> None:
        """Put the RNGs back as they were (call last, once everything else is set up)."""
        torch.set_rng_state(self.torch_rng)
        random.setstate(self.python_rng)


def checkpoint_dir(out_dir: str | Path) -> Path:
    return Path(out_dir) / "checkpoints"


def latest_checkpoint(out_dir: str | Path) -> Path | None:
    """The newest complete checkpoint under ``out_dir``, or None."""
    pointer = checkpoint_dir(out_dir) / "latest"
    if not pointer.is_file():
        return None
    path = checkpoint_dir(out_dir) / pointer.read_text().strip()
    return path if (path / "state.pt").is_file() else None


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def save_checkpoint(out_dir: str | Path, *, step: int, trainable: dict[str, torch.Tensor],
                    optimizer: torch.optim.Optimizer, states: dict[str, dict], config: dict, keep: int = 2) -> Path:
    """Write checkpoint ``step`` and point ``latest`` at it; keep the ``keep`` newest."""
    root = checkpoint_dir(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    name = f"step-{step:06d}"
    final = root / name
    tmp = root / f".{name}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    payload: dict[str, Any] = {
        "format": FORMAT,
        "step": step,
        "trainable": {k: v.detach().cpu().clone() for k, v in trainable.items()},
        "optimizer": optimizer.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "python_rng": random.getstate(),
        "states": states,
        "config": config,
    }
    torch.save(payload, tmp / "state.pt")
    (tmp / "question_state.json").write_text(json.dumps(states, indent=1, sort_keys=True))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    _atomic_write_text(root / "latest", name)
    done = sorted(p for p in root.glob("step-*") if p.is_dir())
    for old in done[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(path: str | Path, *, trainable: dict[str, torch.nn.Parameter],
                    optimizer: torch.optim.Optimizer) -> Checkpoint:
    """Restore weights and optimiser in place; the RNG states come back with `Checkpoint.restore_rng`."""
    path = Path(path)
    payload = torch.load(path / "state.pt", map_location="cpu", weights_only=False)
    if payload.get("format") != FORMAT:
        raise ValueError(f"{path} has checkpoint format {payload.get('format')}, this version reads {FORMAT}")
    saved = payload["trainable"]
    if set(saved) != set(trainable):
        missing, extra = sorted(set(trainable) - set(saved)), sorted(set(saved) - set(trainable))
        raise ValueError(f"{path} does not match the model being trained (missing {missing[:3]}, unexpected "
                         f"{extra[:3]}): was it written with other model or LoRA settings?")
    with torch.no_grad():
        for name, param in trainable.items():
            param.copy_(saved[name].to(param.device, param.dtype))
    optimizer.load_state_dict(payload["optimizer"])
    return Checkpoint(int(payload["step"]), payload["states"], payload["config"], path,
                      payload["torch_rng"], payload["python_rng"])
