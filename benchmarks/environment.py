"""The shared model every system runs on, the torch thread setting, and a description of the machine.

All systems use the same weights object: `load_lm()` loads the bundled SmolLM2-135M-Instruct
(its converted Hugging Face directory is `model_dir()`), and genlm-control, llamppl and plain
``generate`` wrap that same ``torch.nn.Module`` and tokenizer.

Threads matter on a shared machine: with more torch threads than free cores, OpenMP threads
spin-wait on each other and small matrix products get tens of times slower. The harness therefore
sets the thread count explicitly (``--threads``, default 1) and records it with the results.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from functools import cached_property
from importlib import metadata
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # benchmarks never reach a model hub


def set_threads(threads: int) -> int:
    """Use ``threads`` torch threads (0: leave torch's default); returns the count in effect."""
    import torch

    if threads < 0:
        raise ValueError(f"threads must be >= 0 (0 = torch's default), got {threads}")
    if threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def model_dir() -> Path:
    """The converted Hugging Face directory of the bundled model."""
    from selfsteer.smc.lm.loading import bundled_gguf, converted_gguf

    return converted_gguf(bundled_gguf())


@dataclass
class SharedModel:
    """The bundled model, loaded once: ``lm`` (selfsteer's backend) and its HF ``model``/``tokenizer``."""

    lm: Any
    device: str

    @property
    def model(self):
        return self.lm.model

    @property
    def tokenizer(self):
        return self.lm.tokenizer

    def chat_ids(self, prompt: str) -> list[int]:
        """Token ids of ``prompt`` as one user message, chat template applied, assistant turn open."""
        return self.lm.chat_prompt([{"role": "user", "content": prompt}])

    def count_tokens(self, text: str) -> int:
        return len(self.lm.encode(text))

    @cached_property
    def forward_calls(self) -> list[int]:
        """A running count (one-element list) of forward calls of the shared module, by any system:
        a forward hook installed on first use, so every system's forward passes are counted alike."""
        count = [0]

        def hook(module, args, output):
            count[0] += 1

        self.model.register_forward_hook(hook)
        return count

    @cached_property
    def eos_ids(self) -> list[int]:
        """End-of-sequence ids that exist in the tokenizer (selfsteer's set)."""
        return sorted(i for i in self.lm.vocab.eos_ids if i < len(self.tokenizer))

    @cached_property
    def kv_bytes_per_token(self) -> int:
        """Bytes of keys and values one token occupies across all layers."""
        cfg = self.model.config
        heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        itemsize = next(self.model.parameters()).element_size()
        return 2 * cfg.num_hidden_layers * heads * head_dim * itemsize


def load_shared(device: str | None = None, dtype: str = "auto") -> SharedModel:
    """Load the bundled model on ``device`` (default: CUDA if available, else CPU) in ``dtype``
    (`load_lm`'s choices; "auto": float32 on CPU, bfloat16 on CUDA)."""
    from selfsteer.smc import load_lm

    lm = load_lm(backend="transformers", device=device, dtype=dtype)
    return SharedModel(lm, str(lm.device))


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_description(threads: int, device: str) -> dict[str, Any]:
    """CPU, cores, memory, load, GPU and package versions, for the JSON summary."""
    import torch

    desc: dict[str, Any] = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": threads,
        "device": device,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "versions": {
            name: _version(name)
            for name in ("torch", "transformers", "genlm-control", "genlm-backend", "llamppl", "selfsteer")
        },
    }
    try:
        import psutil

        desc["memory_gib"] = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    if torch.cuda.is_available():
        desc["gpu"] = torch.cuda.get_device_name(0)
    return desc
