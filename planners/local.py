"""A planner LM that runs locally through selfsteer's own LM layer.

``LocalChat(lm)`` turns chat messages into a completion by sampling from ``lm`` (any model
`load_lm` loads: a GGUF file, a Hugging Face directory) chunk by chunk, stopping after the closing
fence of the first code block, at EOS or after ``max_new_tokens``. It shows a token progress bar:
on a CPU a 1.5B model writes a few tokens per second.

`qwen_coder_chat` loads the optional Qwen2.5-Coder-1.5B-Instruct planner (see
`selfsteer.planners.download`); it raises `ModelNotFound` with the download command when the
file is missing, unless ``download=True``.
"""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
from tqdm.auto import tqdm

from selfsteer.smc import LanguageModel, LMContext, load_lm

from .download import download_qwen_coder, require_qwen_coder

FENCE = "```"
CHUNK_TOKENS = 16


class LocalChat:
    """``chat(messages) -> completion`` sampled from a local LM (see the module docstring).

    ``temperature`` tempers the LM (low: close to greedy); ``seed`` fixes the sequence of
    completions (each call draws from its own stream, so a retry is a fresh sample rather than a
    replay). After each call ``last_stats`` holds ``tokens``, ``seconds`` and ``tokens_per_s``.
    """

    def __init__(self, lm: LanguageModel, *, max_new_tokens: int = 1024, temperature: float = 0.2,
                 seed: int | None = 0, progress: bool = True):
        self.lm = lm
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.seed = seed
        self.progress = progress
        self.last_stats: dict[str, float] = {}
        self.n_calls = 0
        self._lock = threading.Lock()  # one generation at a time: the LM's batcher belongs to one loop

    def prompt(self, messages: list[dict]) -> list[dict] | str:
        """The chat messages, or for a model without a chat template the same turns as plain text."""
        if self.lm.has_chat_template:
            return messages
        turns = "\n\n".join(f"{m['role'].upper()}:\n{m['content']}" for m in messages)
        return f"{turns}\n\nASSISTANT:\n"

    async def generate(self, messages: list[dict]) -> str:
        ctx = LMContext(self.lm, self.prompt(messages), temperature=self.temperature)
        self.n_calls += 1
        rng = np.random.default_rng(None if self.seed is None else [self.seed, self.n_calls])
        text, n_tokens, started = "", 0, time.monotonic()
        with tqdm(total=self.max_new_tokens, desc="planner LM", unit="tok", disable=not self.progress, leave=False) as bar:
            while n_tokens < self.max_new_tokens:
                dist = ctx.chunk(stop=[FENCE], max_tokens=min(CHUNK_TOKENS, self.max_new_tokens - n_tokens))
                chunk, _ = await dist.sample(rng)
                dist.record(chunk)
                text += chunk.text
                n_tokens += len(chunk.token_ids)
                bar.update(len(chunk.token_ids))
                if chunk.eos or text.count(FENCE) >= 2:
                    break
        seconds = time.monotonic() - started
        self.last_stats = {"tokens": n_tokens, "seconds": seconds, "tokens_per_s": n_tokens / max(seconds, 1e-9)}
        return text

    def __call__(self, messages: list[dict]) -> str:
        with self._lock:
            return asyncio.run(self.generate(messages))


def qwen_coder_chat(*, download: bool = False, dtype: str = "auto", **options) -> LocalChat:
    """The offline Qwen2.5-Coder-1.5B-Instruct planner LM (downloaded only with ``download=True``)."""
    path = download_qwen_coder() if download else require_qwen_coder()
    return LocalChat(load_lm(str(path), dtype=dtype), **options)
