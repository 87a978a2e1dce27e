"""PNG plots of the benchmarks (matplotlib, Agg backend): foundation bars, scaling curves, memory
against particles, a seed study's distributions and the forward pass against plain transformers.
Each function writes one file and returns its path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

STYLE = {
    "selfsteer": ("tab:blue", "o"), "selfsteer-chunk": ("tab:cyan", "s"), "genlm-control": ("tab:red", "^"),
    "llamppl": ("tab:green", "v"), "generate": ("black", "D"),
    "selfsteer-copied-prefix": ("tab:purple", "s"), "plain": ("black", "D"),
    "selfsteer-unpacked": ("tab:olive", "o"), "plain-unpacked": ("tab:gray", "D"),
}


def _style(system: str):
    return STYLE.get(system, ("tab:gray", "x"))


def _log2_x(axes, xlabel: str) -> None:
    """A base-2 log x axis labelled ``xlabel``, a light grid and a legend on each of ``axes``."""
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.set_xlabel(xlabel)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_foundation(foundation: dict[str, Any], path: Path) -> Path:
    tasks = foundation["summary"]
    n_cols = min(2, len(tasks))
    n_rows = -(-len(tasks) // n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(6 * n_cols, 4.5 * n_rows), squeeze=False)
    for ax in axes.flat[len(tasks):]:
        ax.set_visible(False)
    for ax, (task, rows) in zip(axes.flat, tasks.items(), strict=False):
        rows = {s: r for s, r in rows.items() if "error" not in r}
        names = list(rows)
        walls = [rows[s]["wall_s"] for s in names]
        bars = ax.bar(names, walls, color=[_style(s)[0] for s in names])
        for bar, s in zip(bars, names, strict=True):
            r = rows[s]
            ax.annotate(f"{r['wall_s']:.1f} s\n{r['tokens_per_s']:.0f} tok/s\nvalid {r['n_valid']:.0f}/{r['n_particles']}",
                        (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom", fontsize=8)
        first = next(iter(rows.values()), {})
        ax.set_title(f"{task}: N={first.get('n_particles')}, up to {first.get('max_tokens')} tokens")
        ax.set_ylabel("wall time (s, median)")
        ax.set_ylim(0, max(walls, default=1) * 1.35)
        ax.tick_params(axis="x", rotation=20)
    return _save(fig, path)


def plot_scaling(scaling: dict[str, Any], path: Path) -> Path:
    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    for col, (label, key) in enumerate((("particles", "n_particles"), ("length", "max_tokens"))):
        runs = [r for r in scaling[label]["runs"] if not r.get("error")]
        for system in dict.fromkeys(r["system"] for r in runs):
            mine = sorted((r for r in runs if r["system"] == system), key=lambda r: r[key])
            color, marker = _style(system)
            xs = [r[key] for r in mine]
            axes[0, col].plot(xs, [r["wall_s"] for r in mine], marker=marker, color=color, label=system)
            axes[1, col].plot(xs, [r["tokens_per_s"] for r in mine], marker=marker, color=color, label=system)
        fixed = runs[0]["max_tokens"] if label == "particles" and runs else (runs[0]["n_particles"] if runs else "?")
        what = f"{fixed} tokens each" if label == "particles" else f"N={fixed}"
        xlabel = "particles N" if label == "particles" else "generated tokens T"
        for row, ylabel in ((0, "wall time (s)"), (1, "tokens / s")):
            ax = axes[row, col]
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
            ax.set_title(f"free task, {what}")
            ax.grid(True, which="both", alpha=0.3)
        axes[0, col].legend(fontsize=8)
    return _save(fig, path)


def plot_memory(memory: dict[str, Any], path: Path) -> Path:
    s = memory["summary"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for system in ("selfsteer", "generate"):
        if system not in s:
            continue
        color, marker = _style(system)
        n = s[system]["n_particles"]
        axes[0].plot(n, s[system]["run_peak_mib"], marker=marker, color=color, label=system)
        axes[1].plot(n, s[system]["growth_over_first_mib"], marker=marker, color=color, label=system)
    ref = s.get("selfsteer") or s.get("generate")
    if ref:
        axes[1].plot(ref["n_particles"], ref["prompt_copies_kv_mib"], "--", color="tab:red",
                     label="KV of N-1 prompt copies")
        axes[1].plot(ref["n_particles"], ref["generated_kv_mib"], ":", color="tab:gray",
                     label="KV of generated tokens")
    axes[0].set_title(f"peak RSS during the run (prompt {s.get('prompt_tokens')} tokens, {s.get('new_tokens')} generated)")
    axes[0].set_ylabel("MiB")
    axes[1].set_title("run's memory growth over the N=1 run")
    axes[1].set_ylabel("MiB")
    _log2_x(axes, "particles N")
    return _save(fig, path)


def plot_gpu_throughput(summary: dict[str, Any], path: Path) -> Path:
    """Tokens/s, throughput over ``generate``'s and (on CUDA) peak memory against particles."""
    runs = summary["runs"]
    ns = [r["n_particles"] for r in runs]
    memory = runs[0]["systems"]["generate"]["peak_memory_gib"] is not None
    fig, axes = plt.subplots(1, 3 if memory else 2, figsize=(15 if memory else 10, 4.5))
    for system in runs[0]["systems"]:
        color, marker = _style(system)
        per_n = [r["systems"][system] for r in runs]
        axes[0].plot(ns, [s["tokens_per_s"] for s in per_n], marker=marker, color=color, label=system)
        if system != "generate":
            axes[1].plot(ns, [r["ratios_vs_generate"][system] for r in runs], marker=marker, color=color, label=system)
        if memory:
            axes[2].plot(ns, [s["peak_memory_gib"] for s in per_n], marker=marker, color=color, label=system)
    axes[1].axhline(0.8, linestyle="--", color="tab:red", label="target at N=64")
    title = f"{summary['device_name']}, {summary['config']} {summary['dtype']}, T={summary['max_tokens']}"
    for ax, ylabel in zip(axes, ("tokens / s", "throughput / generate's", "peak allocated GiB"), strict=False):
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=9)
    axes[0].set_yscale("log")
    _log2_x(axes, "particles N")
    return _save(fig, path)
