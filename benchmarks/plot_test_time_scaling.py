"""Figures of bench_test_time_scaling.py (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path


def save(fig, prefix: Path, name: str) -> str:
    """Write ``fig`` to ``prefix``_``name``.png, close it and return the path."""
    import matplotlib.pyplot as plt

    path = f"{prefix}_{name}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot(summary: dict, n_tests: int, n_particles: int, prefix: Path) -> list[str]:
    """Accuracy, exploration, LAG and trust figures; returns the PNG paths (``prefix``_*.png)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    acc = {k: v for k, v in summary["accuracy"].items() if v is not None}
    fig, ax = plt.subplots(figsize=(8, 3.8))
    ax.barh(list(acc)[::-1], list(acc.values())[::-1], color="#4c72b0")
    for i, v in enumerate(list(acc.values())[::-1]):
        ax.text(v + 0.01, i, f"{v:.2f}", va="center")
    ax.set_xlim(0, 1)
    ax.set_xlabel(f"accuracy over {n_tests} test questions")
    ax.set_title(f"SmolLM2-135M, {n_particles} particles")
    paths.append(save(fig, prefix, "accuracy"))

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.5))
    for name, stats in summary["exploration"].items():
        ks = list(stats["pass_at_k"])
        a1.plot(ks, [stats["pass_at_k"][k] for k in ks], marker="o", label=name)
    a1.set_xlabel("k")
    a1.set_ylabel("pass@k")
    a1.set_xscale("log", base=2)
    a1.legend()
    names = list(summary["exploration"])
    a2.bar(names, [summary["exploration"][n]["distinct_answers"] for n in names], color=["#999", "#4c72b0", "#dd8452"])
    a2.set_ylabel("distinct answers per question")
    a2.tick_params(axis="x", labelsize=8)
    paths.append(save(fig, prefix, "exploration"))

    lag = summary["lag"]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.5))
    a1.bar(["without LAG", "with LAG"], [lag["accuracy_without"] or 0, lag["accuracy_with"] or 0], color=["#999", "#55a868"])
    a1.set_ylabel("majority-vote accuracy")
    a1.set_ylim(0, 1)
    labels = ["task, no LAG", "task, LAG", "prompt: text", "prompt: KV"]
    vals = [lag["time_per_task_without_s"], lag["time_per_task_with_s"], lag["prefill_text_s"], lag["prefill_kv_s"]]
    a2.bar(labels, [v or 0 for v in vals], color=["#999", "#55a868", "#c44e52", "#8172b3"])
    a2.set_yscale("log")
    a2.set_ylabel("seconds")
    a2.tick_params(axis="x", labelsize=8)
    paths.append(save(fig, prefix, "lag"))

    aurocs = {k: v for k, v in summary["trust_auroc_for_wrong_answers"].items() if v == v and v is not None}
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.barh(list(aurocs), list(aurocs.values()), color="#8172b3")
    ax.axvline(0.5, color="k", lw=0.8, ls="--")
    ax.set_xlim(0, 1)
    ax.set_xlabel(f"AUROC for a wrong majority answer ({summary['n_wrong_majority']} of {n_tests} wrong)")
    paths.append(save(fig, prefix, "trust"))
    return paths
