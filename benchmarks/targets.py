"""The issues' performance targets, checked against one run's numbers.

Every ratio compares numbers measured in the same run (never across runs). A target whose
configuration differs from the run's (``--quick``/``tiny`` sizes) is still computed but marked
``applies: false``; one that needs hardware the run did not have (a GPU) has ``passed: null``.
"""

from __future__ import annotations

from typing import Any

from .stats import paired, paired_bootstrap

SELF, CHUNK, GENLM, LLAMPPL, GENERATE = "selfsteer", "selfsteer-chunk", "genlm-control", "llamppl", "generate"


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b not in (None, 0) else None


def _stat(summary: dict, task: str, system: str, key: str) -> float | None:
    row = summary.get(task, {}).get(system)
    return None if row is None or "error" in row else row.get(key)


def median_ratio_interval(runs: list[dict], task: str) -> str:
    """The 90% interval of genlm-control's median wall over selfsteer's, as text ("" under 3 paired seeds)."""
    mine, theirs = paired(runs, SELF, GENLM, "wall_s", task)
    if len(mine) < 3:
        return ""
    lo, hi = paired_bootstrap(mine, theirs, "median")
    return f"90% paired-bootstrap interval {lo:.2f}-{hi:.2f} over {len(mine)} seeds"


def target(tid: str, description: str, measured: float | None, passed: bool | None, applies: bool, note: str = "") -> dict:
    return {"id": tid, "description": description, "measured": measured,
            "passed": passed if measured is not None else None, "applies": applies, "note": note}


def foundation_targets(foundation: dict, full: bool) -> list[dict[str, Any]]:
    s = foundation["summary"]
    out = []
    for task in foundation.get("tasks", []):
        if task["constraint"] == "free":
            continue
        name, label = task["name"], f"{task['name']} (N={task['n_particles']}, up to {task['max_tokens']} tokens)"
        speed = _ratio(_stat(s, name, GENLM, "wall_s"), _stat(s, name, SELF, "wall_s"))
        cpu = _ratio(_stat(s, name, GENLM, "cpu_s"), _stat(s, name, SELF, "cpu_s"))
        per_token = _ratio(_stat(s, name, SELF, "tokens_per_s"), _stat(s, name, GENLM, "tokens_per_s"))
        mean = _ratio(_stat(s, name, GENLM, "mean_wall_s"), _stat(s, name, SELF, "mean_wall_s"))
        per_forward = _ratio(_stat(s, name, GENLM, "s_per_forward"), _stat(s, name, SELF, "s_per_forward"))
        forwards = (_stat(s, name, SELF, "n_forward"), _stat(s, name, GENLM, "n_forward"))
        notes = [median_ratio_interval(foundation.get("runs", []), name),
                 f"CPU-time ratio {cpu:.2f}" if cpu else "", f"mean-wall ratio {mean:.2f}" if mean else "",
                 f"per-token speed ratio {per_token:.2f}" if per_token else "",
                 f"per-forward-pass ratio {per_forward:.2f} (forward passes: selfsteer {forwards[0]:g}, "
                 f"genlm-control {forwards[1]:g})" if per_forward else ""]
        out.append(target(
            f"constrained_speed_vs_genlm[{name}]", f"{label}: genlm-control wall time / selfsteer wall time >= 3",
            speed, speed is not None and speed >= 3, full, "; ".join(n for n in notes if n),
        ))
        mine, theirs = _stat(s, name, SELF, "n_valid"), _stat(s, name, GENLM, "n_valid")
        out.append(target(
            f"constrained_validity_vs_genlm[{name}]", f"{label}: selfsteer valid outputs >= genlm-control valid outputs",
            None if mine is None or theirs is None else mine - theirs,
            mine is not None and theirs is not None and mine >= theirs, full,
            f"selfsteer {mine} vs genlm-control {theirs} valid (medians)",
        ))
    for system in (SELF, CHUNK):
        ratio = _ratio(_stat(s, "free", system, "wall_s"), _stat(s, "free", GENERATE, "wall_s"))
        cpu = _ratio(_stat(s, "free", system, "cpu_s"), _stat(s, "free", GENERATE, "cpu_s"))
        out.append(target(
            f"free_vs_generate[{system}]",
            f"unconstrained SMC, N=16 x 64 tokens: {system} wall time / plain generate wall time <= 1.3",
            ratio, ratio is not None and ratio <= 1.3, full, f"CPU-time ratio {cpu:.2f}" if cpu else "",
        ))
    return out


def gpu_target(scaling: dict | None, device: str, full: bool) -> dict[str, Any]:
    desc = "GPU, N=64: selfsteer token throughput / plain generate token throughput >= 0.8"
    if not device.startswith("cuda"):
        return target("gpu_throughput_n64", desc, None, None, False, "not measured: this run had no GPU")
    runs = (scaling or {}).get("particles", {}).get("runs", [])
    tps = {r["system"]: r["tokens_per_s"] for r in runs if r["n_particles"] == 64 and not r.get("error")}
    ratio = _ratio(tps.get(SELF), tps.get(GENERATE))
    return target("gpu_throughput_n64", desc, ratio, ratio is not None and ratio >= 0.8, full)


def memory_target(memory: dict | None, full: bool) -> dict[str, Any]:
    desc = ("long shared prompt: selfsteer's memory growth from N=1 to the largest N stays below half "
            "of what copying the prompt's KV for every particle would add")
    mine = (memory or {}).get("summary", {}).get(SELF)
    if not mine or len(mine["n_particles"]) < 2:
        return target("memory_shared_prompt", desc, None, None, full, "not measured")
    growth, copies = mine["growth_over_first_mib"][-1], mine["prompt_copies_kv_mib"][-1]
    ratio = _ratio(growth, copies)
    note = (f"N={mine['n_particles'][-1]}: growth {growth:.0f} MiB vs prompt copies {copies:.0f} MiB "
            f"(generated tokens' KV {mine['generated_kv_mib'][-1]:.0f} MiB)")
    return target("memory_shared_prompt", desc, ratio, ratio is not None and ratio < 0.5, full, note)


def evaluate(results: dict[str, Any], *, size: str, device: str) -> list[dict[str, Any]]:
    full = size == "full"
    out = []
    if "foundation" in results:
        out += foundation_targets(results["foundation"], full)
    if "scaling" in results or device.startswith("cuda"):
        out.append(gpu_target(results.get("scaling"), device, full))
    if "memory" in results:
        out.append(memory_target(results["memory"], full))
    return out


def ratios(foundation: dict) -> dict[str, dict[str, dict[str, float | None]]]:
    """Per foundation task, every system's wall time, CPU time and tokens/s relative to selfsteer."""
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    for task, rows in foundation["summary"].items():
        out[task] = {
            system: {
                "wall_vs_selfsteer": _ratio(_stat(foundation["summary"], task, system, "wall_s"), _stat(foundation["summary"], task, SELF, "wall_s")),
                "cpu_vs_selfsteer": _ratio(_stat(foundation["summary"], task, system, "cpu_s"), _stat(foundation["summary"], task, SELF, "cpu_s")),
                "tokens_per_s_vs_selfsteer": _ratio(_stat(foundation["summary"], task, system, "tokens_per_s"), _stat(foundation["summary"], task, SELF, "tokens_per_s")),
            }
            for system in rows
        }
    return out
