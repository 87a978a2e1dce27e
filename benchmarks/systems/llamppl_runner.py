"""llamppl 0.2: its `smc_standard` over a token-level `Model`, on genlm-backend's `AsyncTransformer`.

Masks are llamppl's own (Python sets of token ids, the library's representation): tokens without
"e"/"E" plus EOS for the no-e task, every token but EOS for the free task. The prompt goes in as
text (llamppl re-tokenises it); setup checks that it round-trips to the chat template's ids.
"""

from __future__ import annotations

import asyncio
import math

import numpy as np

from ..tasks import Task, is_sentence_end
from .base import Outcome, Runner


class LlampplRunner(Runner):
    name = "llamppl"

    def __init__(self, shared):
        super().__init__(shared)
        from genlm.backend.llm import AsyncTransformer
        from llamppl import CachedCausalLM

        self.lm = CachedCausalLM(AsyncTransformer(shared.model, shared.tokenizer))
        vocab = self.lm.byte_vocab
        special = set(shared.tokenizer.all_special_ids)
        eos = set(shared.eos_ids)
        ordinary = {i for i in range(len(vocab)) if i not in special}
        self.masks = {
            "no_e": {i for i in ordinary if b"e" not in bytes(vocab[i]).lower()} | eos,
            "free": set(range(len(vocab))) - eos,
        }
        self.eos = eos

    def supports(self, task: Task) -> str | None:
        return "llamppl 0.2 has no regex constraint" if task.constraint == "regex" else None

    def prepare(self, task: Task, seed: int):
        from llamppl import LMContext, Model, smc_standard

        ids = self.shared.chat_ids(task.prompt)
        prompt = self.shared.tokenizer.decode(ids)
        if self.lm.tokenizer.encode(prompt) != ids:
            raise ValueError("llamppl would re-tokenise the prompt into different ids; the comparison would be unfair")
        lm, mask, eos, budget = self.lm, self.masks[task.constraint], self.eos, task.max_tokens
        sentence = task.ends_at_sentence

        class Program(Model):
            def __init__(self):
                super().__init__()
                self.context = LMContext(lm, prompt)
                self.n_tokens = 0

            async def step(self):
                await self.observe(self.context.mask_dist(mask), True)
                token = await self.sample(self.context.next_token())
                is_eos = token.token_id in eos
                self.n_tokens += 0 if is_eos else 1
                if is_eos or self.n_tokens >= budget or (sentence and is_sentence_end(self.text())):
                    self.finish()

            def text(self) -> str:
                gen = self.context.tokens[self.context.prompt_token_count:]
                return lm.tokenizer.decode([t for t in gen if t not in eos], skip_special_tokens=True)

        def job() -> Outcome:
            lm.clear_cache()
            lm.model.batch_size = task.n_particles
            np.random.seed(seed)
            lm.cache_kv(ids)
            particles = asyncio.run(smc_standard(Program(), task.n_particles, 0.5,
                                                 resampling_method="multinomial"))
            return Outcome(
                texts=[p.text().strip() for p in particles],
                kept=[math.isfinite(p.weight) for p in particles],
                n_tokens=sum(p.n_tokens for p in particles),
            )

        return job
