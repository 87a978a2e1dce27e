"""The memory suite: peak memory against particles on a long shared prompt (1,000+ tokens).

For each system (selfsteer and plain ``generate``) and each N, a fresh process
(`benchmarks.memory_probe`) runs the free task with N particles after the long prompt and reports
its peak resident memory. The summary gives, per N, the absolute peak, the run's growth over the
memory held before it, and that growth over the 1-particle run, next to two yardsticks: the KV
memory of the tokens the particles generate (N x T tokens) and what copying the prompt's KV for
every particle would cost ((N - 1) x P tokens). Sharing the prompt means growth follows the first.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from .memory_probe import MARKER
from .sizes import Size

SYSTEMS = ("selfsteer", "generate")
MIB = 2**20


def probe(system: str, particles: int, size: Size, *, threads: int, device: str | None,
          seed: int, timeout_s: float) -> dict[str, Any]:
    """Run one configuration in a fresh Python process; an error dict if it fails."""
    package = __package__ or "benchmarks"
    cmd = [sys.executable, "-m", f"{package}.memory_probe", "--system", system,
           "--particles", str(particles), "--prompt-tokens", str(size.memory_prompt_tokens),
           "--new-tokens", str(size.memory_new_tokens), "--threads", str(threads), "--seed", str(seed)]
    if device:
        cmd += ["--device", device]
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    base = {"system": system, "n_particles": particles}
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, cwd=root, env=env)
    except subprocess.TimeoutExpired:
        return {**base, "error": f"timed out after {timeout_s:.0f} s"}
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith(MARKER)]
    if not lines:
        return {**base, "error": f"probe exited {done.returncode}: {done.stderr.strip()[-500:]}"}
    return json.loads(lines[-1][len(MARKER):])


def summarise(points: list[dict[str, Any]], size: Size) -> dict[str, Any]:
    """Per system: N, peak, growth and growth over N=1 in MiB, with the KV yardsticks."""
    good = [p for p in points if not p.get("error")]
    out: dict[str, Any] = {}
    if not good:
        return out
    kv = good[0]["kv_bytes_per_token"]
    prompt = good[0]["prompt_tokens"]
    out["prompt_tokens"] = prompt
    out["new_tokens"] = size.memory_new_tokens
    out["kv_mib_per_token"] = kv / MIB
    for system in SYSTEMS:
        mine = sorted((p for p in good if p["system"] == system), key=lambda p: p["n_particles"])
        if not mine:
            continue
        base = mine[0]["growth_bytes"]
        out[system] = {
            "n_particles": [p["n_particles"] for p in mine],
            "max_rss_mib": [p["max_rss_bytes"] / MIB for p in mine],
            "run_peak_mib": [p["run_peak_bytes"] / MIB for p in mine],
            "growth_mib": [p["growth_bytes"] / MIB for p in mine],
            "growth_over_first_mib": [(p["growth_bytes"] - base) / MIB for p in mine],
            "generated_kv_mib": [p["n_particles"] * size.memory_new_tokens * kv / MIB for p in mine],
            "prompt_copies_kv_mib": [(p["n_particles"] - mine[0]["n_particles"]) * prompt * kv / MIB for p in mine],
        }
    return out


def run_memory(size: Size, *, threads: int, device: str | None, seed: int, bar: tqdm | None,
               timeout_s: float = 2400.0) -> dict[str, Any]:
    points = []
    for n in size.memory_particles:
        for system in SYSTEMS:
            if bar is not None:
                bar.set_postfix_str(f"memory {system} N={n}")
            points.append(probe(system, n, size, threads=threads, device=device, seed=seed, timeout_s=timeout_s))
            if bar is not None:
                bar.update(1)
    return {"points": points, "summary": summarise(points, size)}


def count_runs(size: Size) -> int:
    return len(size.memory_particles) * len(SYSTEMS)
