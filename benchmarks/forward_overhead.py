"""selfsteer's batched forward pass against a plain transformers one: ``python -m benchmarks.forward_overhead``.

One decoding step (one new token per row) on the bundled model at each batch size in ``--batches``,
every row holding the prompt (``--prompt no_e``: the no-e sentence's chat prompt; ``long``: a
1,000-token one) plus ``--context`` tokens of its own, timed on one model object:

- ``selfsteer``: `TransformersLM._forward` on a block over the shared prompt (shared-prefix attention);
- ``selfsteer-copied-prefix``: the same with the prompt's keys copied into every row's attention
  (the backend's private ``_shared_prefix_attention`` switch off);
- ``plain``: the model called directly with a transformers `DynamicCache` holding every row's whole
  context, attention by SDPA, with the same linear-layer kernels as the backend (on the CPU, its
  oneDNN packed linears, `smc.lm.transformers.packed`): what the KV store and attention cost is measured against;
- ``plain-unpacked`` (only where the backend packs): the same with PyTorch's default linear layers,
  what plain batched transformers decoding pays per step out of the box.

Before timing, all must give the same next-token logits (the largest difference is recorded).
Each timed call is undone afterwards (the block's width, the cache's crop), so every repeat sees the
same context; the variants take turns within a repeat, so the machine's drift touches all alike.
Reports the median milliseconds per call and each other variant's ratio of medians over plain
with a 90% paired-bootstrap interval (repeat i of one variant pairs with repeat i of plain).
Writes ``forward_overhead_<prompt>.json`` and ``.png`` under ``--out`` and prints a table.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .environment import SharedModel, load_shared, machine_description, set_threads
from .plots import plot_forward_overhead
from .record import device_timed, save_report
from .stats import paired_bootstrap, ratio
from .tasks import NO_E_PROMPT, long_prompt

VARIANTS = ("selfsteer", "selfsteer-copied-prefix", "plain", "plain-unpacked")
DEFAULT_OUT = Path(__file__).resolve().parent / "results"
LOGIT_TOLERANCE = 1e-3


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.forward_overhead", description=__doc__.splitlines()[0])
    p.add_argument("--batches", default="1,4,8,16,64", help="comma-separated batch sizes (default 1,4,8,16,64)")
    p.add_argument("--prompt", default="no_e", choices=("no_e", "long"))
    p.add_argument("--context", type=int, default=20, help="tokens of its own per row before the step (default 20)")
    p.add_argument("--repeats", type=int, default=30, help="timed calls per variant and batch size (default 30)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--device", default=None)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    a = p.parse_args(argv)
    a.batches = [int(b) for b in a.batches.split(",")]
    if min(a.batches) < 1 or a.context < 1 or a.repeats < 2:
        p.error("--batches need to be >= 1, --context >= 1 and --repeats >= 2")
    a.argv = list(sys.argv[1:] if argv is None else argv)
    return a


def selfsteer_step(shared: SharedModel, prompt: list[int], own: list[int], batch: int, token: int,
                   split_prefix: bool) -> Callable[[], torch.Tensor]:
    """A call that feeds ``token`` to ``batch`` rows of ``prompt + own`` through the backend, then undoes it."""
    lm = shared.lm
    with torch.inference_mode():
        handle, _ = lm._prompt(tuple(prompt))
        block = lm._empty_block(handle.prefix, batch, len(own) + 1)
        lm._forward(block, [own] * batch, last_only=True)

    def step() -> torch.Tensor:
        chosen, lm._shared_prefix_attention = lm._shared_prefix_attention, split_prefix
        try:
            with torch.inference_mode():
                logits = lm._forward(block, [[token]] * batch, last_only=True)
        finally:
            lm._shared_prefix_attention = chosen
        block.width -= 1
        block.lengths = [n - 1 for n in block.lengths]
        return logits

    return step


def variants(shared: SharedModel) -> tuple[str, ...]:
    """The variants timed here: ``plain-unpacked`` only where the backend packs its linear layers."""
    return VARIANTS if shared.lm.packed_linears is not None else VARIANTS[:3]


def plain_step(shared: SharedModel, prompt: list[int], own: list[int], batch: int, token: int,
               packed: bool = True) -> Callable[[], torch.Tensor]:
    """A call that feeds ``token`` to ``batch`` rows of ``prompt + own`` in a `DynamicCache`, then
    crops it (``packed``: through the backend's packed linears, where it has them)."""
    from transformers import DynamicCache

    model, device = shared.model, shared.lm.device
    linears = shared.lm.packed_linears
    kernels = linears.active if packed and linears is not None else nullcontext
    cache = DynamicCache(config=model.config)
    with torch.inference_mode():
        model(input_ids=torch.tensor([prompt + own], device=device), past_key_values=cache, use_cache=True)
        cache.batch_repeat_interleave(batch)
    next_ids = torch.full((batch, 1), token, device=device)

    def step() -> torch.Tensor:
        with torch.inference_mode(), kernels():
            logits = model(input_ids=next_ids, past_key_values=cache, use_cache=True).logits[:, -1]
        cache.crop(-1)
        return logits

    return step


def measure_batch(shared: SharedModel, prompt: list[int], own: list[int], batch: int, repeats: int) -> dict[str, Any]:
    """Times per variant at one batch size, their medians, and each other variant's ratio over plain."""
    token = shared.lm.encode(" dog")[0]
    build = {
        "selfsteer": lambda: selfsteer_step(shared, prompt, own, batch, token, split_prefix=True),
        "selfsteer-copied-prefix": lambda: selfsteer_step(shared, prompt, own, batch, token, split_prefix=False),
        "plain": lambda: plain_step(shared, prompt, own, batch, token),
        "plain-unpacked": lambda: plain_step(shared, prompt, own, batch, token, packed=False),
    }
    timed = variants(shared)
    steps = {v: build[v]() for v in timed}  # only the timed ones: each holds its own cache
    others = [v for v in timed if v != "plain"]
    reference = steps["plain"]().float()
    gap = max(float((steps[v]().float() - reference).abs().max()) for v in others)
    if gap > LOGIT_TOLERANCE:
        raise RuntimeError(f"the variants disagree at batch {batch}: logits differ by {gap:.2e}; not timing unequal work")
    ms: dict[str, list[float]] = {v: [] for v in timed}
    for i in range(repeats):
        k = i % len(timed)
        for v in timed[k:] + timed[:k]:  # take turns leading
            ms[v].append(1000 * device_timed(steps[v], shared.lm.device)[1])
    out: dict[str, Any] = {"batch": batch, "max_logit_difference": gap, "ms": ms,
                           "median_ms": {v: float(np.median(t)) for v, t in ms.items()}}
    out["ratio_to_plain"] = {v: ratio(ms["plain"], ms[v]) for v in others}
    out["ratio_to_plain_ci90"] = {v: paired_bootstrap(ms["plain"], ms[v]) for v in others}
    return out


def run(args: argparse.Namespace, shared: SharedModel | None = None) -> dict[str, Any]:
    threads = set_threads(args.threads)
    shared = shared or load_shared(args.device)
    text = NO_E_PROMPT if args.prompt == "no_e" else long_prompt(shared.count_tokens, 1000)
    prompt = shared.chat_ids(text)
    own = (shared.lm.encode(" The dog runs and the cat sleeps.") * args.context)[: args.context]
    started = time.time()
    results = []
    for batch in tqdm(args.batches, desc="forward overhead", unit="batch"):
        shared.lm.prompt_cache.clear()
        results.append(measure_batch(shared, prompt, own, batch, args.repeats))
    return {
        "command": "python -m benchmarks.forward_overhead " + " ".join(args.argv),
        "started": datetime.fromtimestamp(started, UTC).isoformat(timespec="seconds"),
        "duration_s": time.time() - started,
        "machine": machine_description(threads, shared.device),
        "prompt": args.prompt, "prompt_tokens": len(prompt), "context": args.context, "repeats": args.repeats,
        "variants": list(variants(shared)), "results": results,
    }


def render(report: dict[str, Any]) -> str:
    timed = report["variants"]
    others = [v for v in timed if v != "plain"]
    lines = [f"one decoding step, {report['prompt_tokens']}-token prompt + {report['context']} own tokens per row, "
             f"{report['repeats']} repeats (median ms per call; ratio to plain with 90% paired-bootstrap interval)", "",
             "| batch | " + " | ".join(f"{v} ms" for v in timed) + " | " + " | ".join(f"{v} / plain" for v in others) + " |",
             "|---|" + "---|" * (len(timed) + len(others))]
    for r in report["results"]:
        med, rat, ci = r["median_ms"], r["ratio_to_plain"], r["ratio_to_plain_ci90"]
        cells = [f"{med[v]:.1f}" for v in timed] + [f"{rat[v]:.2f}x ({ci[v][0]:.2f}-{ci[v][1]:.2f})" for v in others]
        lines.append(f"| {r['batch']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write(report: dict[str, Any], out: Path) -> list[Path]:
    return save_report(report, out, f"forward_overhead_{report['prompt']}", plot_forward_overhead)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report = run(args)
    print(render(report))
    print("\nwritten: " + ", ".join(str(p) for p in write(report, args.out)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
