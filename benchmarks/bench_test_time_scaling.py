"""Test-time scaling on short arithmetic questions with exact answers, on the bundled SmolLM2-135M.

    python benchmarks/bench_test_time_scaling.py            # the full run (about an hour on 2 busy CPU cores)
    python benchmarks/bench_test_time_scaling.py --quick    # 2 warm-up and 2 test tasks, to check it runs

Every task is answered by `AnswerWithConfidence` (number answers, stated confidence). Per test task:

A. importance sampling (no resampling): accuracy of the follower alone (a single particle, averaged
   over the population), majority, confidence-weighted, max-confidence and likelihood votes;
   calibration of the stated confidences; trust scores (semantic isotropy of the responses,
   failed-step fraction, the majority's vote share) and their AUROC for predicting a wrong answer;
B. SMC with confidence as particle weight (``confidence_power=1``, resampling at ESS < N/2): the
   likelihood vote (the SMC posterior's answer), distinct answers and pass@k;
C. the same SMC with outcome-based exploration: distinct answers and pass@k;
D. LAG: importance sampling after a warm-up set was logged (one log per warm-up task, outcome from
   the verifier; only correct logs are retrieved, k=1, KV reused): accuracy and time per task,
   against A; plus the prompt-encoding time with the log's KV reused vs re-encoded as text.

Writes benchmarks/results/test_time_scaling.json and test_time_scaling_*.png.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"


def make_tasks(n: int, seed: int) -> list[tuple[str, str]]:
    """``n`` distinct one-step questions with integer answers (sums and differences of small numbers)."""
    rng = random.Random(seed)
    seen, tasks = set(), []
    while len(tasks) < n:
        a, b = rng.randint(1, 9), rng.randint(1, 9)
        if rng.random() < 0.6:
            q, ans = f"What is {a} + {b}?", a + b
        else:
            a, b = max(a, b), min(a, b)
            q, ans = f"What is {a} - {b}?", a - b
        if q not in seen:
            seen.add(q)
            tasks.append((q, str(ans)))
    return tasks


def program(lm, question, args, **overrides):
    from selfsteer.programs.answer_with_confidence import AnswerWithConfidence

    params = dict(answer_type="number", max_reasoning_tokens=args.reasoning_tokens,
                  reasoning_line_tokens=args.reasoning_tokens, temperature=args.temperature)
    return AnswerWithConfidence(lm, question, **{**params, **overrides})


def population_stats(result, truth: str, ks: list[int]) -> dict:
    """Accuracy of single particles, distinct answers and pass@k over all particles (dead = wrong)."""
    from selfsteer.smc.scaling import distinct_answers, final_answers, pass_at_k

    answers = final_answers(result)
    n, c = len(answers), sum(a == truth for a in answers)
    return {"answers": answers, "n_correct": c, "single_accuracy": c / n,
            "distinct": distinct_answers(answers), "pass_at_k": {k: pass_at_k(n, c, k) for k in ks}}


def run_is(lm, question, truth, args, embedder, ks, examples=()):
    from selfsteer.smc import smc
    from selfsteer.smc.scaling import final_answers, trust, vote

    started = time.perf_counter()
    r = smc(program(lm, question, args, examples=examples), args.particles, ess_threshold=0.0,
            seed=args.seed, record=True)
    elapsed = time.perf_counter() - started
    out = population_stats(r, truth, ks) | {"time_s": elapsed}
    out["votes"] = {m: vote(r, m).answer == truth for m in ("majority", "confidence", "max_confidence", "likelihood")}
    out["majority_share"] = vote(r, "majority").share
    out["trust"] = trust(r, embedder).to_dict()
    out["confidences"] = [(p.confidence, a == truth) for p, a in zip(r.particles, final_answers(r), strict=True)
                          if a is not None]
    out["best_particle"] = best_particle(r, truth)
    return out


def best_particle(result, truth):
    """The text of the highest-weight correct particle, else of the majority's; and whether it is correct."""
    from selfsteer.smc.scaling import final_answers, vote

    answers = final_answers(result)
    for target, ok in ((truth, True), (vote(result, "majority").answer, False)):
        idx = [i for i, a in enumerate(answers) if a is not None and a == target]
        if idx:
            i = max(idx, key=lambda j: result.log_weights[j])
            return {"text": result.particles[i].text, "correct": ok}
    return None


def run_smc(lm, question, truth, args, ks, explore: float):
    from selfsteer.smc import smc
    from selfsteer.smc.scaling import Exploration, vote

    started = time.perf_counter()
    r = smc(program(lm, question, args, confidence_power=1.0), args.particles, ess_threshold=0.5,
            seed=args.seed, reweight=Exploration(explore) if explore else None)
    out = population_stats(r, truth, ks) | {"time_s": time.perf_counter() - started}
    out["correct"] = vote(r, "likelihood").answer == truth
    out["n_resamples"] = r.n_resamples
    return out


def prefill_seconds(lm, messages, install=None) -> float:
    """Seconds to encode a prompt (cache cleared first; ``install`` puts stored KV back)."""
    from selfsteer.smc import LMContext

    lm.prompt_cache.clear()
    started = time.perf_counter()
    if install is not None:
        install()
    asyncio.run(LMContext(lm, messages).next_logprobs())
    return time.perf_counter() - started


def run_lag(lm, memory, question, truth, args, embedder, ks):
    from selfsteer.programs.answer_with_confidence import INSTRUCTION
    from selfsteer.smc.scaling import canonical_answer, parse_tagged
    from selfsteer.smc.scaling.lag_kv import install_logs, log_messages

    lm.prompt_cache.clear()  # no help from earlier tasks' in-memory cache: only the store persists
    started = time.perf_counter()
    recall = memory.recall(lm, question)
    recall_s = time.perf_counter() - started
    out = run_is(lm, question, truth, args, embedder, ks, examples=recall.examples)
    out["time_s"] += recall_s
    out["recall_s"] = recall_s
    out["n_kv_reused"] = recall.n_kv_reused
    out["retrieved"] = [e.task for e in recall.logs]
    if recall.logs:
        log = recall.logs[0]
        logged = canonical_answer(parse_tagged(log.response).answer)
        out["retrieved_answer_is_truth"] = logged == truth  # copying the example would be right
        out["copied_share"] = sum(a == logged for a in out["answers"]) / len(out["answers"])
        messages = [*log_messages(log.prompt, log.response),
                    {"role": "user", "content": INSTRUCTION.format(question=question)}]
        kv = memory.store.load_kv(log, device=str(lm.device))
        out["prefill_text_s"] = prefill_seconds(lm, messages)
        out["prefill_kv_s"] = prefill_seconds(lm, messages, lambda: install_logs(
            lm, [(log_messages(log.prompt, log.response), kv)]))
        out["log_tokens"] = len(kv.token_ids)
    return out


def summarise(warmup, tests, args) -> dict:
    from selfsteer.smc.scaling import auroc, brier, ece

    def mean(xs):
        xs = [x for x in xs if x is not None]
        return float(np.mean(xs)) if xs else None

    ks = args.ks
    is_runs = [t["is"] for t in tests]
    wrong = [not t["is"]["votes"]["majority"] for t in tests]
    q = [c for r in is_runs for c, _ in r["confidences"]]
    ok = [k for r in is_runs for _, k in r["confidences"]]
    scores = {
        "isotropy (1 - trust)": [None if r["trust"]["trust"] is None else 1 - r["trust"]["trust"] for r in is_runs],
        "failed-step fraction": [r["trust"]["failed_step_fraction"] for r in is_runs],
        "1 - majority share": [1 - r["majority_share"] if r["majority_share"] == r["majority_share"] else None
                               for r in is_runs],
    }
    trust_auroc = {}
    for name, s in scores.items():
        pairs = [(x, w) for x, w in zip(s, wrong, strict=True) if x is not None]
        trust_auroc[name] = auroc([x for x, _ in pairs], [w for _, w in pairs]) if pairs else None
    lag = [t["lag"] for t in tests if "lag" in t]
    return {
        "accuracy": {
            "follower alone (one particle)": mean(r["single_accuracy"] for r in is_runs),
            **{f"{m} vote": mean(r["votes"][m] for r in is_runs) for m in ("majority", "confidence", "max_confidence", "likelihood")},
            "SMC (confidence as weight)": mean(t["smc"]["correct"] for t in tests),
            "SMC + exploration": mean(t["explore"]["correct"] for t in tests),
            "LAG (majority vote)": mean(r["votes"]["majority"] for r in lag),
        },
        "exploration": {
            name: {"distinct_answers": mean(t[key]["distinct"] for t in tests),
                   "pass_at_k": {k: mean(t[key]["pass_at_k"][k] for t in tests) for k in ks},
                   "resamples": mean(t[key].get("n_resamples") for t in tests)}
            for name, key in (("importance sampling", "is"), ("SMC", "smc"), ("SMC + exploration", "explore"))
        },
        "calibration": {"brier": brier(q, ok), "ece": ece(q, ok), "mean_confidence": mean(q),
                        "particle_accuracy": mean(ok)},
        "trust_auroc_for_wrong_answers": trust_auroc,
        "n_wrong_majority": int(sum(wrong)),
        "lag": {
            "warmup_logs": len(warmup), "correct_logs": sum(w["logged_correct"] for w in warmup),
            "accuracy_without": mean(r["votes"]["majority"] for r in is_runs),
            "accuracy_with": mean(r["votes"]["majority"] for r in lag),
            "single_accuracy_without": mean(r["single_accuracy"] for r in is_runs),
            "single_accuracy_with": mean(r["single_accuracy"] for r in lag),
            "time_per_task_without_s": mean(r["time_s"] for r in is_runs),
            "time_per_task_with_s": mean(r["time_s"] for r in lag),
            "prefill_text_s": mean(r.get("prefill_text_s") for r in lag),
            "prefill_kv_s": mean(r.get("prefill_kv_s") for r in lag),
            "kv_reused_share": mean(r["n_kv_reused"] > 0 for r in lag),
            "copied_share": mean(r.get("copied_share") for r in lag),
            "tasks_where_log_answer_is_truth": sum(bool(r.get("retrieved_answer_is_truth")) for r in lag),
        },
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="2 warm-up and 2 test tasks")
    p.add_argument("--warmup", type=int, default=8)
    p.add_argument("--tests", type=int, default=16)
    p.add_argument("--particles", type=int, default=8)
    p.add_argument("--reasoning-tokens", type=int, default=16)
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--explore", type=float, default=1.0, help="exploration weight for C")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (1 is fastest on a shared 2-core machine)")
    p.add_argument("--out", type=Path, default=RESULTS / "test_time_scaling.json")
    args = p.parse_args(argv)
    if args.quick:
        args.warmup, args.tests, args.particles = 2, 2, 4
    args.ks = [k for k in (1, 2, 4, 8, 16) if k <= args.particles]
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from tqdm.auto import tqdm

    from selfsteer.smc import load_lm
    from selfsteer.smc.scaling import LogMemory, load_embedder

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    lm, embedder = load_lm(), load_embedder()
    tasks = make_tasks(args.warmup + args.tests, args.seed)
    warm, test = tasks[: args.warmup], tasks[args.warmup:]
    with tempfile.TemporaryDirectory() as store_dir:
        memory = LogMemory(store_dir, embedder, k=1, outcomes=("correct",))
        warmup = []
        for question, truth in tqdm(warm, desc="warm-up (logging)"):
            r = run_is(lm, question, truth, args, embedder, args.ks)
            best = r["best_particle"]
            if best is not None:
                from selfsteer.programs.answer_with_confidence import INSTRUCTION

                memory.record(lm, question, INSTRUCTION.format(question=question), best["text"],
                              "correct" if best["correct"] else "wrong")
            warmup.append({"question": question, "truth": truth, "logged_correct": bool(best and best["correct"]),
                           "single_accuracy": r["single_accuracy"]})
        tests = []
        for question, truth in tqdm(test, desc="test tasks"):
            row = {"question": question, "truth": truth}
            row["is"] = run_is(lm, question, truth, args, embedder, args.ks)
            row["smc"] = run_smc(lm, question, truth, args, args.ks, 0.0)
            row["explore"] = run_smc(lm, question, truth, args, args.ks, args.explore)
            row["lag"] = run_lag(lm, memory, question, truth, args, embedder, args.ks)
            tests.append(row)
    summary = summarise(warmup, tests, args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    from plot_test_time_scaling import plot  # beside this script

    pngs = plot(summary, len(tests), args.particles, args.out.with_suffix(""))
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    report = {"settings": settings, "model": lm.name, "machine": {
        "platform": platform.platform(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "load_average": os.getloadavg()}, "total_s": time.perf_counter() - started,
        "summary": summary, "warmup": warmup, "tests": tests, "plots": pngs}
    args.out.write_text(json.dumps(report, indent=1, default=str))
    print(json.dumps(summary, indent=1, default=str))
    print(f"wrote {args.out} and {', '.join(pngs)} in {report['total_s']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
