"""Test-time scaling flags shared by ``selfsteer run`` and ``selfsteer solve``.

- ``--vote METHOD``: aggregate the particles' answers (majority, confidence, max_confidence,
  likelihood) and print the winner;
- ``--explore WEIGHT`` / ``--explore-b0 B0``: resample with outcome-based exploration;
- ``--trust``: print semantic isotropy and the failed-step fraction (records the run);
- ``--lag-store DIR`` / ``--lag-k K``: log-augmented generation: put the K nearest stored runs
  before the task (their KV reused on the transformers backend) and store this run afterwards
  (``run`` only: it needs a program file with ``make_model(lm, examples=...)``).
"""

from __future__ import annotations

import argparse
import inspect
from typing import Any

from selfsteer.smc.scaling.answers import AGGREGATORS, final_answers, vote
from selfsteer.smc.scaling.options import ScalingOptions

LAG_OUTCOMES = ("correct", "unverified")  # runs recorded without a verifier are "unverified"


def add_scaling_flags(p: argparse.ArgumentParser, *, lag: bool = True) -> None:
    g = p.add_argument_group("test-time scaling")
    g.add_argument("--vote", choices=AGGREGATORS, default=None, help="aggregate the particles' answers")
    g.add_argument("--explore", type=float, default=0.0, metavar="WEIGHT",
                   help="outcome-based exploration weight (0 = off)")
    g.add_argument("--explore-b0", type=float, default=0.5, help="UCB offset b0 of the exploration bonus")
    g.add_argument("--trust", action="store_true", help="report semantic isotropy and the failed-step fraction")
    if not lag:
        return
    g.add_argument("--lag-store", default=None, metavar="DIR", help="log store for log-augmented generation")
    g.add_argument("--lag-k", type=int, default=1, help="how many stored logs to reuse (default 1)")


def scaling_options(args: argparse.Namespace) -> ScalingOptions:
    """The `ScalingOptions` the flags ask for (a bad value exits with the option's error)."""
    try:
        return ScalingOptions(explore=args.explore, explore_b0=args.explore_b0, vote=args.vote, trust=args.trust)
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None


def lag_memory(args: argparse.Namespace):
    if args.lag_store is None:
        return None
    if args.lag_k < 1:
        raise SystemExit("error: --lag-k must be >= 1")
    from selfsteer.smc.scaling import LogMemory

    return LogMemory(args.lag_store, k=args.lag_k, outcomes=LAG_OUTCOMES)


def accepts_examples(make_model) -> bool:
    return "examples" in inspect.signature(make_model).parameters


def lag_task(model: Any) -> tuple[str, str]:
    """The task and user prompt of a program that supports LAG (attributes ``task``, ``user_prompt``)."""
    task, prompt = getattr(model, "task", None), getattr(model, "user_prompt", None)
    if not isinstance(task, str) or not isinstance(prompt, str):
        raise SystemExit("error: --lag-store needs a program with `task` and `user_prompt` attributes "
                         "(e.g. AnswerWithConfidence) and make_model(lm, examples=...)")
    return task, prompt


def record_run(memory, lm, model, result, vote) -> str:
    """Store the run's best particle for the voted answer as an "unverified" log; returns its id."""
    task, prompt = lag_task(model)
    answers = final_answers(result)
    best = max((i for i, a in enumerate(answers) if a is not None and a == vote.answer),
               key=lambda i: result.log_weights[i], default=None)
    if best is None:
        return ""
    text = getattr(result.particles[best], "text", str(result.particles[best].output))
    return memory.record(lm, task, prompt, text, "unverified").id


def scaling_report(result, args: argparse.Namespace) -> dict[str, Any]:
    """What the flags add to the output: the vote and the trust scores."""
    out: dict[str, Any] = {}
    if args.vote:
        out["vote"] = vote(result, args.vote).to_dict()
    if args.trust:
        from selfsteer.smc.scaling import EmbedderUnavailable, trust

        try:
            out["trust"] = trust(result).to_dict()
        except EmbedderUnavailable as e:
            raise SystemExit(f"error: --trust: {e}") from None
    return out


def print_scaling(extra: dict[str, Any]) -> None:
    """Print the vote and trust lines of `scaling_report` (or of a solve result)."""
    v, t = extra.get("vote"), extra.get("trust")
    if v:
        share = "-" if v["share"] is None else f"{v['share']:.3f}"
        print(f"vote ({v['method']}): {v['answer']!r}   share {share}   voters {v['n_voters']}")
    if t:
        print(f"trust: isotropy {t['isotropy']}   trust {t['trust']}   "
              f"failed-step fraction {t['failed_step_fraction']}")
