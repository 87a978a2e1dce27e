"""Where selfsteer's time goes on a foundation task: ``python -m benchmarks.profile_smc --task no_e|free``.

Runs the selfsteer runner once untimed (warm-up), then once under cProfile, and prints the share
of the run spent in named parts of the stack (the model's forward pass, its linear layers and
attention, selfsteer's KV bookkeeping, batching, sampling, the engine's own Python) followed by the
top functions by own time.

``--model tiny --task free --particles 64`` profiles the free task on the few-MB random Llama of
`benchmarks.gpu_throughput` instead of the bundled model; ``--model llama-1b --device cuda`` on
its 1.1B one on a GPU (bfloat16), where the forward pass's line is the host's time launching it
and the device's own time shows as the draws' wait for their read-back. ``--system`` profiles
``selfsteer-chunk`` or ``generate`` instead. The line "host work" is the run minus the work a GPU
would do (the forward pass, the device's token draws and the log-softmax of fed rows), per
particle and token: what a GPU cannot hide.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
from dataclasses import dataclass

from .environment import SharedModel, load_shared, set_threads
from .record import RunRecord
from .sizes import FULL
from .systems import RUNNERS
from .tasks import free_task, no_e_task

# (label, file suffix, function name): cumulative time of these functions, as a share of the run.
PARTS = (
    ("LM batch processing (TransformersLM._process)", "smc/lm/transformers/backend.py", "_process"),
    ("  model forward (TransformersLM._forward)", "smc/lm/transformers/backend.py", "_forward"),
    ("    torch linear (all projections + lm_head)", "~", "<built-in method torch._C._nn.linear>"),
    ("    oneDNN packed linear (the same, on the CPU)", "~", "<built-in method torch._ops.mkldnn._linear_pointwise>"),
    ("    torch scaled_dot_product_attention", "~", "<built-in method torch._C._nn.scaled_dot_product_attention>"),
    ("    KV cache update (BlockLayer.update: prefix concat)", "smc/lm/transformers/kv.py", "update"),
    ("    torch.cat (all callers)", "~", "<built-in method torch.cat>"),
    ("  block gather on resampling (kv.gather_rows)", "smc/lm/transformers/kv.py", "gather_rows"),
    ("  block growth (Block.reserve)", "smc/lm/transformers/kv.py", "reserve"),
    ("  prompt prefill (TransformersLM._prompt)", "smc/lm/transformers/backend.py", "_prompt"),
    ("  fused sampling loop (TransformersLM._generate_group)", "smc/lm/transformers/backend.py", "_generate_group"),
    ("    token draws on the device (sampling.draw_tokens)", "smc/lm/transformers/sampling.py", "draw_tokens"),
    ("  torch.log_softmax (all callers)", "~", "<built-in method torch.log_softmax>"),
    ("engine: particle steps (step_particles)", "smc/inference.py", "step_particles"),
    ("engine: resample (clone particles)", "smc/inference.py", "resample"),
    ("engine: deepcopy (all callers)", "copy.py", "deepcopy"),
    ("weights: logsumexp (numpy)", "smc/weights.py", "logsumexp"),
    ("sampling: sample_log_probs", "smc/distributions.py", "sample_log_probs"),
    ("context: current_logprobs (masking)", "smc/lm/context.py", "current_logprobs"),
)


def cumulative(stats: pstats.Stats, suffix: str, name: str) -> float:
    """Cumulative seconds of functions named ``name`` in files ending with ``suffix`` (outermost calls only)."""
    total = 0.0
    for (filename, _, func), (_, _, _, ct, _) in stats.stats.items():  # type: ignore[attr-defined]
        if func == name and filename.endswith(suffix):
            total += ct
    return total


def called_from(stats: pstats.Stats, name: str, caller_suffix: str) -> float:
    """Cumulative seconds of the built-in ``name`` in calls made from files ending with ``caller_suffix``."""
    total = 0.0
    for (_, _, func), (_, _, _, _, callers) in stats.stats.items():  # type: ignore[attr-defined]
        if func == name:
            total += sum(ct for (file, _, _), (_, _, _, ct) in callers.items() if file.endswith(caller_suffix))
    return total


def device_seconds(stats: pstats.Stats) -> float:
    """Seconds of the work a GPU would run: the forward pass, the token draws, and the fed rows'
    log-softmax in the backend (each counted once)."""
    return (
        cumulative(stats, "smc/lm/transformers/backend.py", "_forward")
        + cumulative(stats, "smc/lm/transformers/sampling.py", "draw_tokens")
        + called_from(stats, "<built-in method torch.log_softmax>", "smc/lm/transformers/backend.py")
    )


def shared_model(model: str, device: str = "cpu", tokenizer: str | None = None) -> SharedModel:
    """The bundled model, or a random-weight one of `benchmarks.gpu_throughput` ("tiny",
    "llama-1b") on ``device`` (bfloat16 on CUDA, float32 elsewhere)."""
    if model == "bundled":
        return load_shared()
    from .gpu_throughput import DTYPES, auto_dtype, build_lm

    lm = build_lm(model, device, DTYPES[auto_dtype(device)], tokenizer)
    return SharedModel(lm, str(lm.device))


@dataclass
class Profile:
    """One profiled run: its record, the seconds of each of `PARTS` (by label), the host work
    (the run minus `device_seconds`) and the top functions by own time (text)."""

    title: str
    record: RunRecord
    parts: dict[str, float]
    host_s: float
    top: str

    def report(self) -> str:
        r, total = self.record, self.record.wall_s
        lines = [self.title, f"wall {r.wall_s:.2f} s (under cProfile), CPU {r.cpu_s:.2f} s, {r.n_tokens} tokens, "
                 f"extra {r.extra}", "", f"{'part':60s} {'seconds':>9s} {'share':>7s}"]
        lines += [f"{label:60s} {sec:9.2f} {sec / total:7.1%}" for label, sec in self.parts.items()]
        per_token = self.host_s / max(r.n_tokens, 1) * 1e6
        lines.append(f"{'host work (all but forward, draws, log-softmax)':60s} {self.host_s:9.2f} "
                     f"{self.host_s / total:7.1%}  = {per_token:.0f} us per particle per token")
        return "\n".join([*lines, "", "Top functions by own time:", self.top])


def profile(task_name: str, *, model: str, particles: int | None, tokens: int | None, threads: int,
            seed: int, top: int, system: str = "selfsteer", device: str = "cpu",
            tokenizer: str | None = None) -> Profile:
    set_threads(threads)
    shared = shared_model(model, device, tokenizer)
    task = no_e_task(FULL.no_e_particles, FULL.no_e_tokens) if task_name == "no_e" else free_task(FULL.free_particles, FULL.free_tokens)
    task = task.resized(n_particles=particles or task.n_particles, max_tokens=tokens or task.max_tokens)
    runner = RUNNERS[system](shared)
    runner.run(task.resized(n_particles=1, max_tokens=2), seed)  # warm-up
    prof = cProfile.Profile()
    prof.enable()
    record = runner.run(task, seed)
    prof.disable()
    stats = pstats.Stats(prof)
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(top)
    return Profile(
        title=f"{system} on {task.name} ({model} model, {shared.device}): N={task.n_particles}, "
        f"up to {task.max_tokens} tokens, {threads} thread(s)",
        record=record,
        parts={label: cumulative(stats, suffix, name) for label, suffix, name in PARTS},
        host_s=record.wall_s - device_seconds(stats),
        top=buf.getvalue(),
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.profile_smc", description=__doc__.splitlines()[0])
    p.add_argument("--task", choices=("no_e", "free"), default="no_e")
    p.add_argument("--model", choices=("bundled", "tiny", "llama-1b"), default="bundled")
    p.add_argument("--system", choices=("selfsteer", "selfsteer-chunk", "generate"), default="selfsteer")
    p.add_argument("--device", default="cpu", help="for the random-weight models (bfloat16 on CUDA)")
    p.add_argument("--tokenizer", default=None, help="a tokenizer directory for the random-weight models")
    p.add_argument("--particles", type=int, default=None, help="default: the task's full size")
    p.add_argument("--tokens", type=int, default=None, help="default: the task's full size")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--top", type=int, default=25)
    a = p.parse_args(argv)
    print(profile(a.task, model=a.model, particles=a.particles, tokens=a.tokens, threads=a.threads,
                  seed=a.seed, top=a.top, system=a.system, device=a.device, tokenizer=a.tokenizer).report())
    return 0


if __name__ == "__main__":
    sys.exit(main())
