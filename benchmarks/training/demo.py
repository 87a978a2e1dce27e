"""Demonstration of three training objectives on the bundled SmolLM2-135M, on CPU.

Task: small additions ("Q: What is 3 + 4?\\nA:", operands 0..5), which the bundled model
answers correctly about a fifth of the time. Six runs, each LoRA on the top four layers:

1. calibration: RLCR (format + correctness + Brier) against the same recipe without the Brier
   term (correctness only), both with the tagged ``confidence`` program;
2. exploration: outcome-based exploration (UCB-Con, and the batch repeat penalty) against plain
   GRPO, one-line answers;
3. length: ThinkPrune (token limit 16, then 8) against the model before training, one-line answers.

Every run is evaluated before and after training on held-out questions (several completions per
question, fixed evaluation seed), with bootstrap confidence intervals over questions. Results go
to ``benchmarks/results/training/`` (``results.json`` and PNG plots). Run:

    python benchmarks/training/demo.py            # the full demo (two hours on a busy 2-core CPU)
    python benchmarks/training/demo.py rlcr       # one experiment (results.json is updated)
    python benchmarks/training/demo.py --report   # redraw plots and summary.md from results.json
    SELFSTEER_FAST=1 python benchmarks/training/demo.py   # a one-step smoke run

This is a demonstration, not a timed test: the numbers are small-sample estimates.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from selfsteer.smc.scaling.answers import parse_tagged  # noqa: E402
from selfsteer.smc.scaling.metrics import auroc, brier, ece, mean_distinct_answers  # noqa: E402
from selfsteer.training import config_from_dict, load_policy, load_task, train  # noqa: E402
from selfsteer.training.evaluate import EVAL_SEED_SALT  # noqa: E402
from selfsteer.training.metrics_log import read_metrics  # noqa: E402
from selfsteer.training.objectives import build_objective, needs_reference  # noqa: E402

FAST = os.environ.get("SELFSTEER_FAST") == "1"
ROOT = Path(__file__).resolve().parents[2]
RUNS = Path(os.environ.get("SELFSTEER_RUNS", "/tmp/selfsteer-training-demo"))
RESULTS = RUNS / "fast-results" if FAST else ROOT / "benchmarks" / "results" / "training"
STEPS = 1 if FAST else 20
EVAL_SAMPLES = 2 if FAST else 8
BEFORE: dict[tuple, list[dict]] = {}

BASE = {
    "seed": 0,
    "model": {"lora": {"r": 16, "alpha": 32, "layers": [-4, -3, -2, -1],
                       "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]}},
    "task": {"name": "addition", "max_operand": 5, "n_train": 24, "n_eval": 12},
    "sampling": {"group_size": 8, "questions_per_step": 4, "max_tokens": 10, "prompt": "qa", "temperature": 1.0},
    "optim": {"steps": STEPS, "lr": 5.0e-4, "warmup_steps": 2 if not FAST else 0, "grad_accum": 2},
    "log": {"checkpoint_every": 0, "tensorboard": True, "save_model": False,
            "eval_questions": 0},  # the demo evaluates before and after itself, with more samples
}

EXPERIMENTS = {
    "correctness_only": {"objective": {"name": "rlcr", "brier_weight": 0.0}},
    "rlcr": {"objective": {"name": "rlcr"}},
    "grpo": {"objective": {"name": "grpo"}, "sampling": {"program": "line"}},
    "exploration": {"objective": {"name": "exploration", "variant": "ucb_con", "c": 0.5, "b0": 0.5},
                    "sampling": {"program": "line"}},
    "exploration_batch": {"objective": {"name": "exploration", "variant": "batch", "c": 2.0},
                          "sampling": {"program": "line"}},
    "thinkprune": {"objective": {"name": "thinkprune", "schedule": [16, 8]},
                   "sampling": {"program": "line", "max_tokens": 16}},
}


def merged(name: str) -> dict:
    out = json.loads(json.dumps(BASE))
    for section, values in EXPERIMENTS[name].items():
        out.setdefault(section, {}).update(values)
    out["out_dir"] = str(RUNS / name)
    if FAST:
        out["task"].update(n_eval=2)
        out["sampling"].update(group_size=4, questions_per_step=2)
    return out


def sample_records(objective, questions, *, step: int, samples: int, seed: int) -> list[dict]:
    """Per-sample records of held-out completions (question, answer, correctness, confidence, length)."""
    groups, _, _, _ = objective.rollouts(questions, step=step, group_size=samples, seed=seed + EVAL_SEED_SALT, states={})
    objective.policy.after_update()
    out = []
    for g in groups:
        for s in g:
            parsed = parse_tagged(s.text)
            out.append({"question": s.question.id, "text": s.text, "answer": s.answer, "correct": s.correct,
                        "confidence": parsed.confidence if parsed.formatted else None, "tokens": s.n_sampled,
                        "truncated": s.truncated})
    return out


def summarise(records: list[dict], rng: np.random.Generator, n_boot: int = 1000) -> dict:
    """Point estimates and 95% bootstrap intervals (resampling questions) of the main metrics."""
    by_q: dict[str, list[dict]] = {}
    for r in records:
        by_q.setdefault(r["question"], []).append(r)
    qs = sorted(by_q)

    def metrics(rows):
        stated = [(r["confidence"], r["correct"]) for r in rows if r["confidence"] is not None]
        q = [x for x, _ in stated]
        c = [y for _, y in stated]
        groups: dict[str, list] = {}
        for r in rows:
            groups.setdefault(r["question"], []).append(r["answer"])
        return {
            "accuracy": float(np.mean([r["correct"] for r in rows])),
            "tokens": float(np.mean([r["tokens"] for r in rows])),
            "truncated": float(np.mean([r["truncated"] for r in rows])),
            "distinct_answers": mean_distinct_answers(list(groups.values())),
            "formatted": len(stated) / len(rows),
            "confidence": float(np.mean(q)) if q else float("nan"),
            "ece": ece(q, c) if q else float("nan"),
            "brier": brier(q, c) if q else float("nan"),
            "auroc": auroc(q, c) if q else float("nan"),
        }

    point = metrics(records)
    boots = []
    for _ in range(n_boot):
        pick = rng.choice(len(qs), size=len(qs), replace=True)
        rows = [dict(r, question=f"{r['question']}#{i}") for i, k in enumerate(pick) for r in by_q[qs[k]]]
        boots.append(metrics(rows))
    out = {}
    for k, v in point.items():
        vals = np.array([b[k] for b in boots], dtype=float)
        vals = vals[np.isfinite(vals)]
        lo, hi = (np.percentile(vals, [2.5, 97.5]) if vals.size else (np.nan, np.nan))
        out[k] = {"value": v, "ci95": [float(lo), float(hi)]}
    return out


def run(name: str, results: dict) -> None:
    config = config_from_dict(merged(name))
    import shutil

    shutil.rmtree(config.out_dir, ignore_errors=True)
    task = load_task(config.task, config.seed)
    policy = load_policy(config.model, need_reference=needs_reference(config), temperature=config.sampling.temperature,
                         seed=config.seed)
    objective = build_objective(config, task, policy)
    program = config.sampling.program or "confidence"
    key = (program, config.sampling.max_tokens)
    if key not in BEFORE:  # the untrained model, same program, limit and seed: evaluate once
        BEFORE[key] = sample_records(objective, task.eval, step=0, samples=EVAL_SAMPLES, seed=config.seed)
    evaluations = {"before": BEFORE[key]}
    started = time.perf_counter()
    train(config, policy=policy, task=task)
    seconds = time.perf_counter() - started
    objective = build_objective(config, task, policy)
    evaluations["after"] = sample_records(objective, task.eval, step=config.optim.steps - 1, samples=EVAL_SAMPLES,
                                          seed=config.seed)
    if name == "thinkprune":  # also at the first stage's (looser) limit, to separate shortening from cutting
        loose = build_objective(config, task, policy)
        loose.recipe = dataclasses.replace(loose.recipe, token_limit=lambda step: 16)
        evaluations["after_at_16"] = sample_records(loose, task.eval, step=0, samples=EVAL_SAMPLES, seed=config.seed)
    rng = np.random.default_rng(0)
    results[name] = {
        "config": config.to_dict(),
        "train_seconds": seconds,
        "summary": {k: summarise(v, rng) for k, v in evaluations.items()},
        "history": read_metrics(config.out_dir, "train"),
        "samples": evaluations,
    }
    del policy


def value(results, name, when, key):
    return results[name]["summary"][when][key]["value"]


def bar_plot(ax, results, names, when_keys, key, title):
    labels, values, errs = [], [], []
    for name in names:
        for when in when_keys:
            if when not in results[name]["summary"]:
                continue
            s = results[name]["summary"][when][key]
            labels.append(f"{name}\n{when}")
            values.append(s["value"])
            errs.append([s["value"] - s["ci95"][0], s["ci95"][1] - s["value"]])
    errs = np.clip(np.array(errs).T, 0, None)
    ax.bar(range(len(values)), values, yerr=errs, capsize=3, color=["#9aa" if "before" in label else "#37a" for label in labels])
    ax.set_xticks(range(len(values)), labels, fontsize=7)
    ax.set_title(title, fontsize=9)


def plots(results: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    pair = ["correctness_only", "rlcr"]
    bar_plot(axes[0], results, pair, ["before", "after"], "ece", "ECE (lower is better)")
    bar_plot(axes[1], results, pair, ["before", "after"], "accuracy", "accuracy")
    for name, colour in zip(pair, ["#c63", "#37a"], strict=True):
        rows = [r for r in results[name]["samples"]["after"] if r["confidence"] is not None]
        q = np.array([r["confidence"] for r in rows])
        c = np.array([r["correct"] for r in rows], dtype=float)
        bins = np.linspace(0, 1, 11)
        idx = np.clip(np.digitize(q, bins) - 1, 0, 9)
        xs = [q[idx == b].mean() for b in range(10) if (idx == b).any()]
        ys = [c[idx == b].mean() for b in range(10) if (idx == b).any()]
        axes[2].plot(xs, ys, "o-", color=colour, label=name)
    axes[2].plot([0, 1], [0, 1], "k--", lw=0.8)
    axes[2].set(xlabel="stated confidence", ylabel="accuracy", title="reliability after training")
    axes[2].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(RESULTS / "calibration.png", dpi=120)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    explorers = [n for n in ("grpo", "exploration", "exploration_batch") if n in results]
    for name, colour in zip(explorers, ["#c63", "#37a", "#3a7"], strict=False):
        h = results[name]["history"]
        axes[0].plot([r["step"] for r in h], [r["distinct_answers"] for r in h], color=colour, label=name)
    axes[0].set(xlabel="step", ylabel="distinct answers per group (G=8)", title="training groups")
    axes[0].legend(fontsize=7)
    bar_plot(axes[1], results, explorers, ["before", "after"], "distinct_answers",
             "held-out: distinct answers per question")
    fig.tight_layout()
    fig.savefig(RESULTS / "exploration.png", dpi=120)
    plt.close(fig)

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    h = results["thinkprune"]["history"]
    axes[0].plot([r["step"] for r in h], [r["completion_tokens"] for r in h], label="tokens")
    axes[0].plot([r["step"] for r in h], [r["token_limit"] for r in h], "k--", lw=0.8, label="limit L")
    axes[0].set(xlabel="step", ylabel="sampled tokens", title="ThinkPrune: completion length")
    axes[0].legend(fontsize=7)
    bar_plot(axes[1], results, ["thinkprune"], ["before", "after_at_16", "after"], "tokens", "held-out tokens")
    bar_plot(axes[2], results, ["thinkprune"], ["before", "after_at_16", "after"], "accuracy", "held-out accuracy")
    fig.tight_layout()
    fig.savefig(RESULTS / "thinkprune.png", dpi=120)
    plt.close(fig)


SHOWN = {
    "calibration": (["correctness_only", "rlcr"], ["accuracy", "formatted", "confidence", "ece", "brier", "auroc"]),
    "exploration": (["grpo", "exploration", "exploration_batch"], ["accuracy", "distinct_answers", "tokens"]),
    "length": (["thinkprune"], ["accuracy", "tokens", "truncated"]),
}


def fmt(m: dict) -> str:
    v, (lo, hi) = m["value"], m["ci95"]
    return "n/a" if not np.isfinite(v) else f"{v:.3f} [{lo:.2f}, {hi:.2f}]"


def summary_markdown(results: dict) -> str:
    """Tables of before/after metrics with 95% bootstrap intervals over questions."""
    lines = []
    for title, (names, keys) in SHOWN.items():
        lines += [f"### {title}", "", "| run | when | " + " | ".join(keys) + " |", "|---|---|" + "---|" * len(keys)]
        for name in [n for n in names if n in results]:
            for when, m in results[name]["summary"].items():
                lines.append(f"| {name} | {when} | " + " | ".join(fmt(m[k]) for k in keys) + " |")
        lines.append("")
    lines.append("Training time (s): " + ", ".join(f"{n} {r['train_seconds']:.0f}" for n, r in results.items()))
    return "\n".join(lines) + "\n"


def main() -> int:
    torch.set_num_threads(int(os.environ.get("SELFSTEER_THREADS", "1")))
    path = RESULTS / "results.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    if sys.argv[1:] == ["--report"]:  # redraw plots and tables from saved results
        plots(results)
        (RESULTS / "summary.md").write_text(summary_markdown(results))
        return 0
    names = sys.argv[1:] or list(EXPERIMENTS)
    for name in names:
        print(f"== {name}", flush=True)
        run(name, results)
        RESULTS.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=1))
        s = results[name]["summary"]
        print(json.dumps({w: {k: round(v["value"], 3) for k, v in m.items()} for w, m in s.items()}), flush=True)
    if all(n in results for n in EXPERIMENTS):
        plots(results)
        (RESULTS / "summary.md").write_text(summary_markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
