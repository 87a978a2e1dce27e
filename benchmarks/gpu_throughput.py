"""Token throughput of selfsteer against plain batched ``generate`` on one randomly initialised model.

Command (from the repository root)::

    python -m benchmarks.gpu_throughput --config llama-1b --particles 1 16 64 256 --tokens 128 --device cuda

Weights cannot be downloaded here, so the model is a real architecture with random weights: a
Llama of about 1.1B parameters (``llama-1b``: hidden 2048, 16 layers, 32 heads, 8 KV heads,
intermediate 8192, tied embeddings) or a few-MB one (``tiny``, for CPU tests), with the bundled
SmolLM2 tokenizer (vocabulary 49152; ``--tokenizer DIR`` reads it from a directory instead, on a
machine without the bundled model). One process, one model object, three systems, each the
runner `benchmarks.run` uses on the free task:

- ``generate``: ``model.generate`` with pure sampling (temperature 1, no top-k/top-p) of N
  sequences of exactly T tokens (``min_new_tokens = max_new_tokens = T``);
- ``selfsteer``: token-level SMC with EOS disallowed (`benchmarks.programs.FixedLengthTokens`);
- ``selfsteer-chunk``: one fused T-token chunk per particle (`benchmarks.programs.FixedLengthChunk`).

All run the free task's prompt through the chat template (``--prompt-tokens K``: a shared prompt
of at least K tokens instead, to measure memory on a long prompt), and the prompt cache is cleared
before each selfsteer run so every system pays its prefill. For each N in ``--particles`` each
system gets one warm-up run, then the median wall time of ``--repeats`` runs (CUDA synchronised
before and after each). Throughput is N*T / wall; the ratio is selfsteer's throughput over
generate's (the issue's target: >= 0.8 at N=64 on a GPU). On CUDA it also records each system's
peak allocated memory (weights included).

Writes ``gpu_throughput.json`` and ``gpu_throughput.png`` under ``--out`` (default
``benchmarks/results``) and prints a table after each N, so a run cut short keeps what it measured.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch
import transformers

from selfsteer.smc.lm.transformers.backend import TransformersLM

from . import results_file
from .environment import SharedModel, model_dir
from .plots import plot_gpu_throughput
from .record import device_timed
from .systems import Runner, make_runners
from .tasks import Task, free_task, long_prompt

SYSTEMS = ("generate", "selfsteer", "selfsteer-chunk")  # the runners of `benchmarks.run`
TARGET_N = 64  # the target is stated at N=64

CONFIGS = {  # Llama-3.2-1B's shape with SmolLM2's vocabulary; a few-MB one for CPU tests
    "llama-1b": dict(hidden_size=2048, num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8, intermediate_size=8192),
    "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, intermediate_size=128),
}
DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


def build_lm(config: str, device: str, dtype: torch.dtype, tokenizer: Path | None = None) -> TransformersLM:
    """A randomly initialised (seed 0) Llama of size ``config`` with the bundled tokenizer (or the
    one in directory ``tokenizer``)."""
    tok = transformers.AutoTokenizer.from_pretrained(tokenizer or model_dir())
    cfg = transformers.LlamaConfig(
        vocab_size=len(tok),
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.eos_token_id,
        **CONFIGS[config],
    )
    cfg._attn_implementation = "sdpa"
    torch.manual_seed(0)
    with torch.device(device):
        model = transformers.LlamaForCausalLM(cfg).to(dtype)
    return TransformersLM(model.eval(), tok, name=f"random-{config}")


def measure(runner: Runner, task: Task, device: torch.device, repeats: int) -> dict:
    """One warm-up run, then the median of ``repeats`` timed runs (and peak CUDA memory).

    Each run's job comes from the runner's untimed ``prepare``, exactly as in `benchmarks.run`;
    on CUDA the device is synchronised before and after the timed job.
    """
    cuda = device.type == "cuda"
    runner.prepare(task, 0)()
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    walls, n_tokens = [], 0
    for seed in range(1, repeats + 1):
        outcome, wall = device_timed(runner.prepare(task, seed), device)
        n_tokens = outcome.n_tokens
        walls.append(wall)
    wall = statistics.median(walls)
    return {
        "wall_s": wall,
        "walls_s": walls,
        "n_tokens": n_tokens,
        "tokens_per_s": n_tokens / wall,
        "peak_memory_gib": torch.cuda.max_memory_allocated(device) / 2**30 if cuda else None,
    }


def make_task(shared: SharedModel, tokens: int, prompt_tokens: int) -> Task:
    """The free task (its particle count is set per N), after a long prompt if ``prompt_tokens``."""
    if not prompt_tokens:
        return free_task(max_tokens=tokens)
    prompt = long_prompt(shared.count_tokens, prompt_tokens)
    return free_task(max_tokens=tokens, prompt=prompt, name=f"free-{prompt_tokens}")


def auto_dtype(device: str) -> str:
    """The dtype "auto" means: bfloat16 on CUDA, float32 elsewhere (as `load_lm`)."""
    return "bfloat16" if device.startswith("cuda") else "float32"


def run(args: argparse.Namespace) -> None:
    """Measure every N of ``--particles``; the JSON, plot and table are written after each N, so a
    run cut short keeps what it measured."""
    dtype_name = auto_dtype(args.device) if args.dtype == "auto" else args.dtype
    lm = build_lm(args.config, args.device, DTYPES[dtype_name], args.tokenizer)
    device = lm.device
    shared = SharedModel(lm, str(device))
    runners, missing = make_runners(list(SYSTEMS), shared)
    if missing:
        raise SystemExit(f"cannot run {missing}")
    base = make_task(shared, args.tokens, args.prompt_tokens)
    tasks = {n: base.resized(n_particles=n) for n in args.particles}
    summary = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "dtype": dtype_name,
        "config": args.config,
        "model": CONFIGS[args.config],
        "n_parameters": sum(p.numel() for p in lm.model.parameters()),
        "prompt_tokens": len(shared.chat_ids(base.prompt)),
        "max_tokens": args.tokens,
        "repeats": args.repeats,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        "runs": [],
    }
    for n, task in tasks.items():
        results = {r.name: measure(r, task, device, args.repeats) for r in runners}
        base = results["generate"]["tokens_per_s"]
        ratios = {k: v["tokens_per_s"] / base for k, v in results.items() if k != "generate"}
        summary["runs"].append({"n_particles": n, "systems": results, "ratios_vs_generate": ratios})
        summary["target"] = target(summary["runs"])
        save(summary, args.out)


def save(summary: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    results_file.write(out / "gpu_throughput.json", summary)
    plot_gpu_throughput(summary, out / "gpu_throughput.png")
    print(table(summary), flush=True)


def target(runs: list[dict]) -> dict:
    """The issue's GPU target at N=64: selfsteer's throughput >= 0.8x generate's (None: N=64 not run)."""
    ratio = next((r["ratios_vs_generate"]["selfsteer"] for r in runs if r["n_particles"] == TARGET_N), None)
    return {"n_particles": TARGET_N, "ratio": ratio, "passed": None if ratio is None else ratio >= 0.8}


def table(summary: dict) -> str:
    lines = [
        f"{summary['device_name']}, {summary['dtype']}, {summary['config']} "
        f"({summary['n_parameters'] / 1e6:,.0f}M parameters), prompt {summary['prompt_tokens']} tokens, "
        f"T={summary['max_tokens']}",
        f"{'N':>4s} {'system':16s} {'wall s':>8s} {'tok/s':>9s} {'vs generate':>11s} {'peak GiB':>9s}",
    ]
    for run in summary["runs"]:
        for name, r in run["systems"].items():
            ratio = run["ratios_vs_generate"].get(name, 1.0)
            peak = "-" if r["peak_memory_gib"] is None else f"{r['peak_memory_gib']:.2f}"
            lines.append(
                f"{run['n_particles']:4d} {name:16s} {r['wall_s']:8.3f} {r['tokens_per_s']:9.1f} "
                f"{ratio:11.2f} {peak:>9s}"
            )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", choices=sorted(CONFIGS), default="llama-1b")
    p.add_argument("--particles", type=int, nargs="+", default=[TARGET_N])
    p.add_argument("--tokens", type=int, default=128)
    p.add_argument("--prompt-tokens", type=int, default=0, help="a shared prompt of at least this many tokens (0: the free task's)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument(
        "--dtype", choices=["auto", *DTYPES], default="auto", help="auto: bfloat16 on CUDA"
    )
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--tokenizer", type=Path, default=None, help="a directory holding the tokenizer (default: the bundled model's)")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    run(parse_args(argv))


if __name__ == "__main__":
    main()
