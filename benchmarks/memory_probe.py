"""One memory measurement in a fresh process: ``python -m benchmarks.memory_probe --system S
--particles N --prompt-tokens P --new-tokens T``.

It loads the shared model, warms the system up on a one-token run (so first-call allocations are
not billed to the measurement), builds the long-prompt free task, then measures the peak resident
memory of the run alone (the kernel's high-water mark is reset just before it, via
``/proc/self/clear_refs``; elsewhere a 1 ms sampling thread stands in) and prints one line
``MEMORY_PROBE {json}`` with the absolute peak (``ru_maxrss``), the resident memory before the run
and the run's peak.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import sys
import threading
from pathlib import Path

MARKER = "MEMORY_PROBE "


def _status_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def _reset_high_water_mark() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


class PeakRSS:
    """Peak resident memory of this process during a ``with`` block (``start``, ``peak`` in bytes)."""

    def __enter__(self) -> PeakRSS:
        import psutil

        self._proc = psutil.Process()
        gc.collect()
        self.exact = _reset_high_water_mark()
        self.start = self._proc.memory_info().rss
        self._samples = [self.start]
        self._stop = threading.Event()
        if not self.exact:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.001):
            self._samples.append(self._proc.memory_info().rss)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self.exact:
            self.peak = _status_bytes("VmHWM")
        else:
            self._thread.join()
            self.peak = max(self._samples)


def measure(system: str, particles: int, prompt_tokens: int, new_tokens: int, *,
            threads: int, device: str | None, seed: int) -> dict:
    from .environment import load_shared, set_threads
    from .systems import RUNNERS
    from .tasks import free_task, long_prompt

    set_threads(threads)
    shared = load_shared(device)
    prompt = long_prompt(shared.count_tokens, prompt_tokens)
    task = free_task(particles, new_tokens, prompt=prompt, name="long_prompt")
    runner = RUNNERS[system](shared)
    runner.run(free_task(1, 1), seed)  # warm-up: kernels, allocator pools, lazy tables
    cuda = shared.device.startswith("cuda")
    if cuda:
        import torch

        torch.cuda.reset_peak_memory_stats()
    with PeakRSS() as rss:
        record = runner.run(task, seed)
    out = {
        "system": system, "n_particles": particles, "new_tokens": new_tokens,
        "prompt_tokens": len(shared.chat_ids(prompt)),
        "kv_bytes_per_token": shared.kv_bytes_per_token,
        "rss_before_bytes": rss.start, "run_peak_bytes": rss.peak, "growth_bytes": rss.peak - rss.start,
        "max_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "exact_peak": rss.exact, "wall_s": record.wall_s, "n_tokens": record.n_tokens, "error": record.error,
    }
    if cuda:
        out["cuda_peak_bytes"] = torch.cuda.max_memory_allocated()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--system", required=True)
    p.add_argument("--particles", type=int, required=True)
    p.add_argument("--prompt-tokens", type=int, required=True)
    p.add_argument("--new-tokens", type=int, required=True)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default=None)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    result = measure(a.system, a.particles, a.prompt_tokens, a.new_tokens,
                     threads=a.threads, device=a.device, seed=a.seed)
    print(MARKER + json.dumps(result), flush=True)
    return 0 if result["error"] is None else 1


if __name__ == "__main__":
    sys.exit(main())
