"""A planner LM that runs locally through selfsteer's own LM layer.

``LocalChat(lm)`` turns chat messages into a completion by sampling from ``lm`` (any model
`load_lm` loads: a GGUF file, a Hugging Face directory) chunk by chunk, stopping after the closing
fence of the first code block, at EOS or after ``max_new_tokens``. It shows a token progress bar.

Speed on a CPU comes from never prefilling the same prompt twice: before a completion,
`LocalChat` feeds the prompt's static parts on their own (the system message, then every turn
before the last user message), so the LM's prompt cache holds them and each later prompt only
prefills its new tail (the task, or a retry's feedback). With ``kv_dir`` the static parts' keys
and values are also kept on disk (`PrefixStore`), so a new process skips even the first prefill.
After each call ``last_stats`` says how many tokens were prefilled and generated, and how fast.

`qwen_coder_chat` loads the optional Qwen2.5-Coder-1.5B-Instruct planner (see
`selfsteer.planners.download`) in bfloat16; it raises `ModelNotFound` with the download command
when the file is missing, unless ``download=True``.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from selfsteer.smc import LanguageModel, LMContext, load_lm, smc_async
from selfsteer.smc.lm.loading import cache_dir

from .download import download_qwen_coder, require_qwen_coder

FENCE = "```"
CHUNK_TOKENS = 16


def common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


class PrefixStore:
    """Keys and values of prompt prefixes on disk, for a transformers-backend LM.

    ``load(lm, ids)`` puts a stored prefix into ``lm``'s prompt cache (True if there was one);
    ``save(lm, ids)`` writes the prefix the prompt cache holds for ``ids``. Files are keyed by the
    model's name, dtype and the token ids, so a changed prompt or model never reads a stale file.
    LMs without a prompt cache (the exact LM, vLLM) are skipped.
    """

    def __init__(self, root: Path | str):
        self.root = Path(root)

    @staticmethod
    def supports(lm: LanguageModel) -> bool:
        return hasattr(lm, "prompt_cache") and hasattr(lm, "model")

    def path(self, lm: LanguageModel, ids: list[int]) -> Path:
        dtype = next(lm.model.parameters()).dtype
        key = hashlib.sha256(f"{lm.name}|{dtype}|{ids}".encode()).hexdigest()[:24]
        return self.root / f"{key}.pt"

    def load(self, lm: LanguageModel, ids: list[int]) -> bool:
        import torch

        from selfsteer.smc.lm.transformers.kv import Segment

        path = self.path(lm, ids)
        if not self.supports(lm) or not path.is_file():
            return False
        data = torch.load(path, map_location=lm.device)
        segment = Segment(list(data["keys"]), list(data["values"]))
        lm.prompt_cache.put(tuple(ids), (segment,), data["logits"])
        return True

    def save(self, lm: LanguageModel, ids: list[int]) -> None:
        import torch

        hit = lm.prompt_cache.get(tuple(ids)) if self.supports(lm) else None
        if hit is None:
            return
        chain, logits = hit
        keys = [torch.cat([s.keys[i] for s in chain], dim=2) for i in range(len(chain[0].keys))]
        values = [torch.cat([s.values[i] for s in chain], dim=2) for i in range(len(chain[0].values))]
        path = self.path(lm, ids)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save({"keys": keys, "values": values, "logits": logits}, tmp)
        tmp.replace(path)


class LocalChat:
    """``chat(messages) -> completion`` sampled from a local LM (see the module docstring).

    ``temperature`` tempers the LM (low: close to greedy); ``seed`` fixes the sequence of
    completions (each call draws from its own stream, so a retry is a fresh sample rather than a
    replay); ``kv_dir`` keeps the static prompt parts' keys and values on disk (None: memory only).
    ``grammar`` writes the program under `program_grammar` with SMC (``grammar_particles``
    particles; see `selfsteer.planners.program_grammar`): every completion it returns parses and
    validates, or is empty when no particle finished a valid program.
    After each call ``last_stats`` holds ``prefill_tokens`` (prompt tokens this call computed),
    ``prefill_s``, ``tokens``
    (generated), ``seconds`` (generating) and ``tokens_per_s``.
    """

    def __init__(self, lm: LanguageModel, *, max_new_tokens: int = 1024, temperature: float = 0.2,
                 seed: int | None = 0, progress: bool = True, kv_dir: Path | str | None = None,
                 grammar: bool = False, grammar_particles: int = 4):
        self.lm = lm
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.seed = seed
        self.progress = progress
        self.store = PrefixStore(kv_dir) if kv_dir is not None else None
        self.grammar = grammar
        self.grammar_particles = grammar_particles
        self.last_stats: dict[str, float] = {}
        self.n_calls = 0
        self._primed: set[tuple[int, ...]] = set()
        self._lock = threading.Lock()  # one generation at a time: the LM's batcher belongs to one loop

    def prompt(self, messages: list[dict]) -> list[dict] | str:
        """The chat messages, or for a model without a chat template the same turns as plain text."""
        if self.lm.has_chat_template:
            return messages
        turns = "\n\n".join(f"{m['role'].upper()}:\n{m['content']}" for m in messages)
        return f"{turns}\n\nASSISTANT:\n"

    def static_prefixes(self, messages: list[dict]) -> list[list[int]]:
        """Token ids of the prompt's static parts: through the system message, and through every
        turn before the last user message (each a prefix of the whole prompt's ids)."""
        full = self.lm.prompt_ids(self.prompt(messages))
        last_user = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=0)
        out = []
        for k in sorted({1, last_user} - {0}):
            n = common_prefix(self.lm.prompt_ids(self.prompt(messages[:k])), full)
            if 0 < n < len(full) and (not out or n > len(out[-1])):
                out.append(full[:n])
        return out

    async def prime(self, messages: list[dict]) -> tuple[int, int]:
        """Feed the static parts not yet cached (from disk when stored); returns the tokens this
        prefilled and the length of the longest static part."""
        prefilled, cached, statics = 0, 0, self.static_prefixes(messages)
        for ids in statics:  # each extends the one before it
            key = tuple(ids)
            if key not in self._primed and (self.store is None or not self.store.load(self.lm, ids)):
                await LMContext(self.lm, ids).next_logprobs()
                prefilled += len(ids) - cached
                if self.store is not None:
                    self.store.save(self.lm, ids)
            self._primed.add(key)
            cached = len(ids)
        return prefilled, len(statics[-1]) if statics else 0

    async def generate(self, messages: list[dict]) -> str:
        started = time.monotonic()
        prefilled, static = await self.prime(messages)
        ctx = LMContext(self.lm, self.prompt(messages), temperature=self.temperature)
        await ctx.next_logprobs()  # the prompt's tail, after the longest cached prefix
        prefilled += ctx.n_prompt - static
        prefill_s = time.monotonic() - started
        self.n_calls += 1
        if self.grammar:
            return await self._constrained(messages, prefilled, prefill_s)
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
        self.last_stats = {"prefill_tokens": prefilled, "prefill_s": prefill_s, "tokens": n_tokens, "seconds": seconds,
                           "tokens_per_s": n_tokens / max(seconds, 1e-9)}
        return text

    async def _constrained(self, messages: list[dict], prefilled: int, prefill_s: float) -> str:
        """A program written under the program grammar, fenced ("" when none finished valid)."""
        from .program_grammar import ProgramWriter

        started = time.monotonic()
        writer = ProgramWriter(self.lm, self.prompt(messages), max_tokens=self.max_new_tokens)
        result = await smc_async(writer, self.grammar_particles, seed=None if self.seed is None else self.seed + self.n_calls)
        program = next(iter(result.posterior), None)
        seconds = time.monotonic() - started
        n_tokens = result.n_steps * self.grammar_particles
        self.last_stats = {"prefill_tokens": prefilled, "prefill_s": prefill_s, "tokens": n_tokens, "seconds": seconds,
                           "tokens_per_s": n_tokens / max(seconds, 1e-9)}
        return f"```python\n{program.rstrip()}\n```" if program else ""

    def __call__(self, messages: list[dict]) -> str:
        with self._lock:
            return asyncio.run(self.generate(messages))


def qwen_coder_chat(*, download: bool = False, dtype: str = "bfloat16", kv_dir: Path | str | None = "default",
                    **options) -> LocalChat:
    """The offline Qwen2.5-Coder-1.5B-Instruct planner LM (downloaded only with ``download=True``),
    in bfloat16, its static prompt parts cached under ``$SELFSTEER_CACHE/planners/kv`` by default."""
    path = download_qwen_coder() if download else require_qwen_coder()
    kv = cache_dir() / "planners" / "kv" if kv_dir == "default" else kv_dir
    return LocalChat(load_lm(str(path), dtype=dtype), kv_dir=kv, **options)
